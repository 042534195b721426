"""``running_server``: the real server on a free loopback port, in the test's own loop."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from switchboard.server import Config, Server


@contextlib.asynccontextmanager
async def _running(app: Any, **options: Any) -> AsyncIterator[tuple[str, int]]:
    options.setdefault("port", 0)
    options.setdefault("timeout_graceful_shutdown", 5.0)
    server = Server(Config(app=app, **options))
    await server.startup()
    host, port = server.sockets[0].getsockname()[:2]
    try:
        yield host, port
    finally:
        await server.shutdown()


@pytest.fixture
def running_server():
    return _running
