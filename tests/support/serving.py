"""The real server on a free loopback port, in the test's own event loop.

Running in the test's loop (not a thread) lets a test share in-process state with the served
application, such as the in-memory channel layer, while clients talk to it over real sockets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from switchboard.server import Config, Server

__all__ = ["serving"]


@asynccontextmanager
async def serving(application: Any, **options: Any) -> AsyncIterator[str]:
    """Serve ``application``; yields ``"127.0.0.1:<port>"``."""
    options.setdefault("timeout_graceful_shutdown", 5.0)
    options.setdefault("application_close_timeout", 5.0)
    options.setdefault("access_log", False)
    server = Server(Config(app=application, host="127.0.0.1", port=0, **options))
    await server.startup()
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        await server.shutdown()
