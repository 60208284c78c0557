"""`make soak`: the user's session scenario in a loop against the whole system, for a bounded time.

    SOAK_SECONDS=600 make soak            # or: uv run python -m tests.e2e.soak

Starts the same system as the e2e tests (every part a real process on loopback), then runs the session
(/start, /status Java, /status Bedrock, Players, About, Status from the cache, /status) over and over,
each time as a new chat and with an empty cache (so every round also probes the peers), and asks the
second query-service replica for the Java server (it must answer from the shared cache). Every 10 s it
samples the resident memory (VmRSS) of each process. At the end it prints a summary: rounds, replies,
errors by step, and each service's RSS at the start (after one warm-up round), at the end, its peak and
its growth; the same summary is written as JSON to test-logs/soak/<time>/summary.json. Exits 1 when any
round failed.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mcstatbot_testkit.harness import ScenarioError, System, TelegramUser, rss_kib, run_session

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_EVERY = 10.0
SERVICES = ("bot", "query-1", "query-2")


@dataclass
class MemoryTrack:
    start_kib: int | None = None
    end_kib: int | None = None
    peak_kib: int = 0
    samples: list[int] = field(default_factory=list)

    def add(self, kib: int | None) -> None:
        if kib is None:
            return
        if self.start_kib is None:
            self.start_kib = kib
        self.end_kib = kib
        self.peak_kib = max(self.peak_kib, kib)
        self.samples.append(kib)

    @property
    def growth_kib(self) -> int | None:
        if self.start_kib is None or self.end_kib is None:
            return None
        return self.end_kib - self.start_kib


@dataclass
class SoakSummary:
    seconds: float = 0.0
    rounds: int = 0
    failed_rounds: int = 0
    replies: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    first_errors: list[str] = field(default_factory=list)
    memory: dict[str, MemoryTrack] = field(default_factory=dict)
    logged_errors: dict[str, int] = field(default_factory=dict)

    def sample(self, system: System) -> None:
        for name, pid in system.processes().items():
            self.memory.setdefault(name, MemoryTrack()).add(rss_kib(pid))

    def render(self) -> str:
        lines = [
            (
                f"soak: {self.rounds} rounds in {self.seconds:.0f} s, {self.replies} replies, "
                f"{self.failed_rounds} failed rounds"
            )
        ]
        for step, count in self.errors.most_common():
            lines.append(f"  errors at {step}: {count}")
        lines.extend(f"  e.g. {error}" for error in self.first_errors[:5])
        lines.extend(
            f"  ERROR records in {name}: {count}" for name, count in sorted(self.logged_errors.items())
        )
        lines.append(f"  {'process':<14}{'start MiB':>11}{'end MiB':>10}{'peak MiB':>10}{'growth MiB':>12}")
        for name, track in sorted(self.memory.items(), key=lambda kv: (kv[0] not in SERVICES, kv[0])):
            growth = track.growth_kib
            lines.append(
                f"  {name:<14}{_mib(track.start_kib):>11}{_mib(track.end_kib):>10}{_mib(track.peak_kib):>10}"
                f"{_mib(growth):>12}"
            )
        return "\n".join(lines)

    def to_json(self) -> str:
        data = asdict(self)
        data["errors"] = dict(self.errors)
        for name, track in self.memory.items():
            data["memory"][name]["growth_kib"] = track.growth_kib
            data["memory"][name].pop("samples")
        return json.dumps(data, indent=2)


def _mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.1f}"


def soak(seconds: float, log_dir: Path) -> SoakSummary:
    summary = SoakSummary()
    chat_ids = itertools.count(900_000_001)
    with System(log_dir) as system:
        run_session(system, TelegramUser(system.api, next(chat_ids)))  # warm-up: imports, pools, JIT
        summary.sample(system)
        started = last_sample = time.monotonic()
        while time.monotonic() - started < seconds:
            system.flush_cache()
            user = TelegramUser(system.api, next(chat_ids))
            summary.rounds += 1
            try:
                report = run_session(system, user)
            except ScenarioError as exc:
                summary.failed_rounds += 1
                summary.errors[str(exc).split(":", 1)[0]] += 1
                if len(summary.first_errors) < 20:
                    summary.first_errors.append(str(exc)[:300])
                system.heal()
            else:
                summary.replies += report.steps
                # The second replica reads what the first one cached (and is measured with load too).
                if (
                    system.query_status(system.query_other, system.java.address).headers.get("X-Cache")
                    != "HIT"
                ):
                    summary.failed_rounds += 1
                    summary.errors["second replica"] += 1
            system.api.reset()  # keep the test server's call log from growing without bound
            if time.monotonic() - last_sample >= SAMPLE_EVERY:
                summary.sample(system)
                last_sample = time.monotonic()
            if summary.rounds % 25 == 0:
                print(f"soak: {summary.rounds} rounds, {summary.failed_rounds} failed", flush=True)  # noqa: T201
        summary.sample(system)
        summary.seconds = time.monotonic() - started
    for log in sorted(log_dir.glob("*.log")):
        if log.stem.startswith(("bot", "query")):
            summary.logged_errors[log.stem] = log.read_text(errors="replace").count('"level": "ERROR"')
    return summary


def main() -> int:
    seconds = float(os.environ.get("SOAK_SECONDS", "600"))
    log_dir = REPO_ROOT / "test-logs" / "soak" / time.strftime("%Y%m%d-%H%M%S")
    print(f"soak: {seconds:.0f} s; logs in {log_dir}", flush=True)  # noqa: T201
    summary = soak(seconds, log_dir)
    (log_dir / "summary.json").write_text(summary.to_json())
    print(summary.render())  # noqa: T201
    return 1 if summary.failed_rounds else 0


if __name__ == "__main__":
    sys.exit(main())
