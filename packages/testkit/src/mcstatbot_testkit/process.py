"""A managed child process: started with its output kept in a log file, stopped for sure."""

from __future__ import annotations

import abc
import contextlib
import json
import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from pathlib import Path
    from types import TracebackType


class Started(abc.ABC):
    """A part a test starts and must stop for sure: `with part:` starts it and stops it on the way out."""

    @abc.abstractmethod
    def start(self) -> Self: ...

    @abc.abstractmethod
    def stop(self) -> object: ...

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class AsyncStarted(abc.ABC):
    """A part a test runs on its event loop: `async with part:` starts it and stops it on the way out."""

    @abc.abstractmethod
    async def start(self) -> Self: ...

    @abc.abstractmethod
    async def stop(self) -> None: ...

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


class ManagedProcess(Started):
    """Start `argv` in its own process group, logging to `log_path`; `stop()` ends the whole group.

    Use as a context manager, or call `start()` and `stop()`; `restart()` starts it again with the
    same arguments (for tests that kill a peer mid-run and bring it back).
    """

    def __init__(
        self,
        argv: list[str],
        log_path: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        *,
        inherit_env: bool = True,
    ) -> None:
        """`env` adds to this process's environment, or replaces it with `inherit_env=False`."""
        self.argv = argv
        self.log_path = log_path
        self.env = {**(os.environ if inherit_env else {}), **(env or {})}
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(  # noqa: S603 - argv comes from the test suite
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        finally:
            log.close()
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("the process was not started")
        return self.proc.pid

    def send_signal(self, sig: signal.Signals) -> None:
        if self.running and self.proc is not None:
            os.killpg(self.proc.pid, sig)

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        """Send `sig` to the process group, wait, then SIGKILL whatever is left. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # children that outlived their parent
        return self.proc.returncode

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self) -> Self:
        self.stop()
        return self.start()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def run_python_json(script: str, args: list[str], env: dict[str, str], timeout: float = 120.0) -> Any:
    """`script` in a fresh interpreter of this environment (`python -c`), with exactly `env`; its last
    line of output parsed as JSON. Raises with the script's stderr when it fails."""
    done = subprocess.run(  # noqa: S603 - this environment's own interpreter, a script of the tests
        [sys.executable, "-c", script, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        message = f"the script exited with {done.returncode}:\n{done.stderr[-4000:]}"
        raise RuntimeError(message)
    return json.loads(done.stdout.splitlines()[-1])
