"""HTTP clients of the transports: an SSE stream reader and a long-poll session, on httpx."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx


class Stream:
    """An open ``text/event-stream`` response, read event by event (comments included)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.aiter_lines()
        self.token = ""

    async def next(self, timeout: float = 5) -> dict[str, Any]:
        """The next event as ``{"event", "data", "id"}``, or ``{"comment": text}``."""
        return await asyncio.wait_for(self._next(), timeout)

    async def _next(self) -> dict[str, Any]:
        event: dict[str, Any] = {}
        data: list[str] = []
        async for line in self.lines:
            if line == "":
                if data or event:
                    event.setdefault("event", "message")
                    event["data"] = "\n".join(data)
                    return event
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "":
                return {"comment": value}
            if field == "data":
                data.append(value)
            else:
                event[field] = value
        raise EOFError("stream ended")

    async def text(self, timeout: float = 5) -> str:
        event = await self.next(timeout)
        assert event.get("event") == "message", event
        return event["data"]


@asynccontextmanager
async def sse(
    client: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None
) -> AsyncIterator[Stream]:
    """The stream of ``GET url&sb_transport=sse``, its ``sb.session`` event read."""
    async with client.stream("GET", url + "&sb_transport=sse", headers=headers) as response:
        stream = Stream(response)
        if response.status_code == 200:
            first = await stream.next()
            assert first["event"] == "sb.session", first
            stream.token = json.loads(first["data"])["session"]
        yield stream


async def post(
    client: httpx.AsyncClient, url: str, transport: str, token: str, *frames: str, **extra: Any
) -> httpx.Response:
    body = {"frames": list(frames), **extra}
    return await client.post(f"{url}&sb_transport={transport}&sb_session={token}", json=body)


class Poller:
    """A long-poll session: ``open()``, then ``poll()`` answers (it keeps ``ack``)."""

    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self.client = client
        self.url = url
        self.token = ""
        self.ack = 0

    async def open(self, expect: int = 200) -> httpx.Response:
        response = await self.client.post(self.url + "&sb_transport=poll")
        assert response.status_code == expect, response.text
        if expect == 200:
            self.token = response.json()["session"]
        return response

    async def poll(self, ack: int | None = None, timeout: float = 10) -> httpx.Response:
        ack = self.ack if ack is None else ack
        url = f"{self.url}&sb_transport=poll&sb_session={self.token}&sb_ack={ack}"
        response = await self.client.get(url, timeout=timeout)
        if response.status_code == 200:
            self.ack = max(self.ack, response.json()["seq"])
        return response

    async def send(self, *frames: str, **extra: Any) -> httpx.Response:
        return await post(self.client, self.url, "poll", self.token, *frames, **extra)

    async def frames(self, count: int, timeout: float = 10) -> list[Any]:
        """Poll until ``count`` frames came (more is a failure)."""
        got: list[Any] = []
        while len(got) < count:
            response = await self.poll(timeout=timeout)
            assert response.status_code == 200, response.text
            got.extend(response.json()["frames"])
        assert len(got) == count, got
        return got
