"""`python -m mcstatbot_query` / `mcstatbot-query`: the query service under uvicorn on HOST:PORT."""

from __future__ import annotations

import uvicorn
from mcstatbot_common.logging import configure_logging
from mcstatbot_common.observability import setup_tracing

from mcstatbot_query.app import create_app
from mcstatbot_query.settings import QuerySettings


def main() -> None:
    settings = QuerySettings()
    configure_logging(settings.log_level, settings.log_format)
    setup_tracing("query")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        timeout_graceful_shutdown=10,
        ws="none",  # no WebSocket endpoint: uvicorn need not load a WebSocket implementation
    )


if __name__ == "__main__":
    main()
