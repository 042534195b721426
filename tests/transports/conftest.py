"""The transport tests' real server, in the test's own loop (tests/support/serving.py), on
the suite's in-memory channel layer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from switchboard.transports import hosts
from tests.support.serving import serving
from tests.transports import site


class Served:
    def __init__(self, address: str, client: httpx.AsyncClient) -> None:
        self.address = address
        self.base = f"http://{address}"
        self.client = client

    def url(self, route: str = "echo", query: str = "x=1") -> str:
        return f"{self.base}/ws/{route}/?{query}"

    async def event(self, what: str, timeout: float = 5) -> Any:
        """The next thing a consumer reported (``Events``), which must be ``what``."""
        assert site.Events.queue is not None
        got, value = await asyncio.wait_for(site.Events.queue.get(), timeout)
        assert got == what, (got, value)
        return value

    def sessions(self) -> dict[str, Any]:
        host = hosts._hosts.get(asyncio.get_running_loop())
        return dict(host.sessions) if host is not None else {}

    async def no_sessions(self, timeout: float = 5) -> None:
        """Wait until every session of this process was freed (they end asynchronously)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.sessions():
            assert asyncio.get_running_loop().time() < deadline, self.sessions()
            await asyncio.sleep(0.01)


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    site.Events.queue = asyncio.Queue()
    try:
        async with serving(site.application) as address:
            async with httpx.AsyncClient(timeout=10) as client:
                yield Served(address, client)
    finally:
        site.Events.queue = None
        host = hosts._hosts.pop(asyncio.get_running_loop(), None)
        if host is not None:
            host.close()
