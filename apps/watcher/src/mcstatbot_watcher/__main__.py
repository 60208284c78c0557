"""`mcstatbot-watcher` / `python -m mcstatbot_watcher`: the watcher service (uvicorn).

Exit status 2 when the configuration is unusable, 1 when the Bot API cannot be reached, with one line on
stderr, as `mcstatbot-bot`.
"""

from __future__ import annotations

import asyncio
import sys

import uvicorn
from mcstatbot_bot.__main__ import check_telegram, load_settings
from mcstatbot_common.logging import UVICORN_LOG_CONFIG, configure_logging
from mcstatbot_common.observability import setup_tracing

from mcstatbot_watcher.settings import WatcherSettings


def main() -> None:
    settings = load_settings(WatcherSettings, "mcstatbot-watcher")
    configure_logging(settings.log_level, settings.log_format, service="watcher")
    status, line = asyncio.run(check_telegram(settings))
    if status:
        sys.stderr.write(f"mcstatbot-watcher: {line}\n")
        raise SystemExit(status)
    setup_tracing("watcher")
    from mcstatbot_watcher.app import create_app  # noqa: PLC0415 - after logging and tracing are set up

    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=UVICORN_LOG_CONFIG,
        timeout_graceful_shutdown=int(settings.graceful_shutdown_seconds),
        server_header=False,
        ws="none",
    )


if __name__ == "__main__":
    main()
