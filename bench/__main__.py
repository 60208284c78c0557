"""`python -m bench` (what `make bench` runs): every benchmark, then the JSON, the chart and the doc page.

Environment: BENCH_QUICK=1 (a short run), BENCH_ONLY=name[,name], BENCH_RUNS, BENCH_DURATION,
BENCH_PROTECTION_SECONDS, BENCH_PROTECTION_CLIENTS, BENCH_NO_PIN=1 (see bench/config.py).
"""

from __future__ import annotations

import sys

from bench.config import from_environment
from bench.runner import run


def main() -> int:
    results = run(from_environment())
    failed = [name for name, bench in results["benchmarks"].items() if bench["status"] == "failed"]
    if failed:
        print(f"benchmarks that failed: {', '.join(failed)} (see the log above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
