"""Wait until a service answers `GET <url>/ready` with 200 while its process is alive.

    python scripts/wait_for_ready.py NAME PID URL [TIMEOUT_SECONDS]

Used by run-local.sh (`make run`) after it starts each service. Exit status 0 once the service is
ready; 1, with a line saying why, when the process exits first or TIMEOUT_SECONDS (default 60) pass.
Standard library only, so it runs with any Python 3.11.
"""

from __future__ import annotations

import os
import sys
import time
import urllib.request

HTTP_OK = 200


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ready", timeout=1) as response:  # noqa: S310 - a loopback http URL
            return bool(response.status == HTTP_OK)
    except OSError:  # refused, reset, timed out, or an HTTP error status
        return False


def main(argv: list[str]) -> int:
    if len(argv) not in {3, 4}:
        print("usage: wait_for_ready.py NAME PID URL [TIMEOUT_SECONDS]", file=sys.stderr)
        return 2
    name, pid, url = argv[0], int(argv[1]), argv[2].rstrip("/")
    timeout = float(argv[3]) if len(argv) == 4 else 60.0  # noqa: PLR2004 - the optional fourth argument
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            print(f"mcstatbot: {name} exited during start-up", file=sys.stderr)
            return 1
        if ready(url):
            return 0
        time.sleep(0.2)
    print(f"mcstatbot: {name} not ready after {timeout:.0f} s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
