"""The chart worker: /history pictures drawn in a separate process, bounded in time and memory.

- One worker process (`ProcessPoolExecutor`, max_workers=1, the `spawn` context: a fresh interpreter,
  never a fork of the bot with its event loop and sockets), started at the first /history, replaced after
  `TASKS_PER_CHILD` charts (`max_tasks_per_child`), so matplotlib and numpy are never imported into the bot's
  own process and whatever the drawing leaves behind goes with the worker.
- Memory: the worker's address space is limited (`RLIMIT_AS`, `MEMORY_LIMIT_BYTES`) before it imports
  anything; a chart that needs more fails with MemoryError in the worker, not in the bot.
- Time: the worker arms an alarm for each chart (SIGALRM's default action ends the process, also inside
  C code), and the bot waits at most the same time plus a second; a chart over it fails, the pool is
  thrown away and the next /history starts a new worker.

Every failure is `ChartFailedError` for the caller, which tells the user.
"""

from __future__ import annotations

import asyncio
import logging
import math
import multiprocessing
import os
import resource
import signal
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING

from mcstatbot_bot import history_chart

if TYPE_CHECKING:
    from collections.abc import Callable

    from mcstatbot_bot.history_chart import ChartRequest

    Job = Callable[[ChartRequest, int], bytes]

log = logging.getLogger(__name__)
TASKS_PER_CHILD = 20
MEMORY_LIMIT_BYTES = 1536 * 1024 * 1024
"""The worker's address space: numpy and matplotlib need about 0.5 GiB of it, a 30-day chart little more."""


class ChartFailedError(Exception):
    """The chart could not be drawn (timed out, ran out of memory, the worker died or raised)."""


def _init_worker(memory_bytes: int) -> None:
    """Runs in the worker before anything is drawn: one thread for numpy's maths, the memory bound."""
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"
    os.environ["MPLBACKEND"] = "Agg"
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


def draw_in_worker(request: ChartRequest, seconds: int) -> bytes:
    """`history_chart.render` under an alarm of `seconds` (the process ends when it rings)."""
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.alarm(seconds)
    try:
        return history_chart.render(request)
    finally:
        signal.alarm(0)


class ChartWorker:
    def __init__(
        self, *, timeout: float, memory_bytes: int = MEMORY_LIMIT_BYTES, job: Job | None = None
    ) -> None:
        """`job`: what the worker runs (a module-level function; `draw_in_worker` unless a test says)."""
        self.timeout = timeout
        self.memory_bytes = memory_bytes
        self.job: Job = job or draw_in_worker
        self._pool: ProcessPoolExecutor | None = None

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(self.memory_bytes,),
                max_tasks_per_child=TASKS_PER_CHILD,
            )
        return self._pool

    def _discard(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def draw(self, request: ChartRequest) -> bytes:
        """The chart's PNG, drawn in the worker; ChartFailedError when it could not be."""
        seconds = max(1, math.ceil(self.timeout))
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self._get_pool(), self.job, request, seconds)
            async with asyncio.timeout(seconds + 1):
                return await future
        except (TimeoutError, BrokenProcessPool) as exc:
            log.warning("drawing a history chart failed: %s", type(exc).__name__)
            self._discard()  # a worker stuck or dead: the next chart gets a new one
            raise ChartFailedError(type(exc).__name__) from exc
        except Exception as exc:
            log.warning("drawing a history chart failed: %r", exc)
            raise ChartFailedError(type(exc).__name__) from exc

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
