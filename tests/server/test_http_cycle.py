"""``http_cycle.HttpCycle`` without sockets: the ASGI HTTP rules (ASGI HTTP spec, "Request",
"Response Start", "Response Body", "Disconnected Client"; the http.response.trailers and
pathsend extensions) that HTTP/1.1 and HTTP/2 share, seen through the events a writer gets."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from http import HTTPStatus
from typing import Any

import pytest

from switchboard.server.asgi.errors import ClientDisconnected, InvalidResponse
from switchboard.server.asgi.http_cycle import CycleState, HttpCycle
from switchboard.server.asgi.types import HeaderIterable
from switchboard.server.wire.http11_framing import content_length


class Recorder(HttpCycle):
    """A writer that records the cycle's events."""

    __slots__ = ("events",)

    def __init__(self, method: str = "GET") -> None:
        HttpCycle.__init__(self, asyncio.get_running_loop(), {"method": method})
        self.events: list[tuple[Any, ...]] = []

    def _head(self, status: int, headers: HeaderIterable) -> int | None:
        length = None
        for name, value in headers:
            if name.lower() == b"content-length":
                length = content_length(value)
        self.events.append(("start", status, length))
        return length

    def _body(self, body: Any, more: bool) -> Awaitable[None] | None:
        self.wrote = True
        self.events.append(("body", bytes(body), more))
        return None

    async def _file(self, path: Any) -> None:
        self.count_down(len(path), False)  # the "file" is its name, for the test
        self.events.append(("file", path))

    def _trailers(self, fields: HeaderIterable, more: bool) -> Awaitable[None] | None:
        self.events.append(("trailers", list(fields), more))
        return None

    def _done(self) -> None:
        self.events.append(("done",))

    def _continue(self) -> None:
        self.events.append(("100",))


def start(status: Any = 200, headers: Any = (), **extra: Any) -> dict[str, Any]:
    return {"type": "http.response.start", "status": status, "headers": headers, **extra}


def body(data: Any = b"", more: bool = False) -> dict[str, Any]:
    return {"type": "http.response.body", "body": data, "more_body": more}


async def test_start_body_done() -> None:
    cycle = Recorder()
    assert cycle.state is CycleState.START
    await cycle.send(start(200, [(b"content-length", b"5")]))
    assert cycle.state is CycleState.BODY
    await cycle.send(body(b"he", more=True))
    await cycle.send(body(bytearray(b"llo")))
    assert cycle.state is CycleState.DONE
    assert cycle.events == [
        ("start", 200, 5),
        ("body", b"he", True),
        ("body", b"llo", False),
        ("done",),
    ]


@pytest.mark.parametrize("status", [100, 199, 600, 0, "200", 200.0, True, None])
async def test_only_final_statuses(status: Any) -> None:
    cycle = Recorder()
    with pytest.raises(InvalidResponse, match="Invalid status"):
        await cycle.send(start(status))
    assert cycle.state is CycleState.START and cycle.events == []


async def test_status_int_subclass_is_an_int() -> None:
    cycle = Recorder()
    await cycle.send(start(HTTPStatus.NOT_FOUND))
    assert cycle.events[0] == ("start", 404, None)
    assert cycle.status.__class__ is int


async def test_refused_messages_have_no_effect() -> None:
    cycle = Recorder()
    with pytest.raises(InvalidResponse, match="Expected 'http.response.start'"):
        await cycle.send(body(b"x"))
    await cycle.send(start(200, [(b"content-length", b"3")]))
    with pytest.raises(InvalidResponse, match="Expected 'http.response.body'"):
        await cycle.send(start(200))  # a second start is refused
    with pytest.raises(InvalidResponse, match="longer"):
        await cycle.send(body(b"abcd"))
    with pytest.raises(InvalidResponse, match="shorter"):
        await cycle.send(body(b"ab"))
    with pytest.raises(InvalidResponse, match="must be bytes"):
        await cycle.send(body("abc"))
    assert cycle.events == [("start", 200, 3)]
    await cycle.send(body(b"abc"))
    with pytest.raises(InvalidResponse, match="the response is complete"):
        await cycle.send(body(b""))
    assert cycle.events[-1] == ("done",)


@pytest.mark.parametrize(("method", "status"), [("HEAD", 200), ("GET", 204), ("GET", 304)])
async def test_no_content_length_is_not_counted(method: str, status: int) -> None:
    # HEAD, 204 and 304 have no content: their content-length describes the representation
    # (RFC 9110 sections 8.6, 9.3.2, 15.4.5), so a short (empty) body is fine.
    cycle = Recorder(method)
    await cycle.send(start(status, [(b"content-length", b"10")]))
    assert cycle.no_content and cycle.length is None
    await cycle.send(body())
    assert cycle.state is CycleState.DONE


async def test_connect_2xx_refused() -> None:
    cycle = Recorder("CONNECT")
    with pytest.raises(InvalidResponse, match="tunnel"):
        await cycle.send(start(200))
    await cycle.send(start(405))
    assert cycle.events == [("start", 405, None)]


async def test_trailers_only_when_asked() -> None:
    cycle = Recorder()
    await cycle.send(start(200))
    await cycle.send(body(b"x"))
    with pytest.raises(InvalidResponse, match="the response is complete"):
        await cycle.send({"type": "http.response.trailers", "headers": []})

    cycle = Recorder()
    await cycle.send(start(200, trailers=True))
    await cycle.send(body(b"x"))
    assert cycle.state is CycleState.TRAILERS  # not complete before the last trailers
    with pytest.raises(InvalidResponse, match="Expected 'http.response.trailers'"):
        await cycle.send(body(b"y"))
    with pytest.raises(InvalidResponse, match="Invalid header value"):
        await cycle.send({"type": "http.response.trailers", "headers": [(b"x", b"a\r\nb")]})
    fields = [(b"x-sum", b"1")]
    await cycle.send({"type": "http.response.trailers", "headers": fields, "more_trailers": True})
    await cycle.send({"type": "http.response.trailers", "headers": []})
    assert cycle.events[1:] == [
        ("body", b"x", False),
        ("trailers", fields, True),
        ("trailers", [], False),
        ("done",),
    ]


async def test_pathsend_ends_the_body() -> None:
    cycle = Recorder()
    await cycle.send(start(200, [(b"content-length", b"4")]))
    await cycle.send({"type": "http.response.pathsend", "path": "/abc"})
    assert cycle.events[1:] == [("file", "/abc"), ("done",)]


async def test_send_after_disconnect() -> None:
    cycle = Recorder()
    cycle.disconnected = True
    with pytest.raises(ClientDisconnected):
        await cycle.send(start(200))


async def test_receive_body_then_disconnect_after_response() -> None:
    cycle = Recorder("POST")
    cycle.body.extend([b"ab", b"c"])
    assert await cycle.receive() == {"type": "http.request", "body": b"abc", "more_body": True}
    cycle.body.append(b"d")
    cycle.complete = True
    assert await cycle.receive() == {"type": "http.request", "body": b"d", "more_body": False}
    # The whole body was handed over: receive() waits for the end of the response.
    waiting = asyncio.ensure_future(cycle.receive())
    await asyncio.sleep(0)
    assert not waiting.done()
    await cycle.send(start(200))
    await cycle.send(body(b"ok"))
    assert await asyncio.wait_for(waiting, 1) == {"type": "http.disconnect"}


async def test_receive_waits_for_body_and_reports_disconnect() -> None:
    cycle = Recorder("POST")
    waiting = asyncio.ensure_future(cycle.receive())
    await asyncio.sleep(0)
    assert not waiting.done()
    cycle.complete = True
    cycle.wake()
    assert await waiting == {"type": "http.request", "body": b"", "more_body": False}
    cycle.disconnected = True
    assert await cycle.receive() == {"type": "http.disconnect"}


async def test_100_continue_on_first_receive_before_the_response() -> None:
    # RFC 9110 section 10.1.1: the client waits for 100 Continue before it sends the content.
    cycle = Recorder("POST")
    cycle.expect_continue = True
    cycle.complete = True
    await cycle.receive()
    cycle.disconnected = True
    await cycle.receive()
    assert cycle.events == [("100",)]  # once

    cycle = Recorder("POST")
    cycle.expect_continue = True
    cycle.complete = True
    await cycle.send(start(417))
    await cycle.receive()
    assert cycle.events == [("start", 417, None)]  # answered already: no interim response


async def test_unanswered() -> None:
    cycle = Recorder()
    assert cycle.unanswered() == "starting a response"
    await cycle.send(start(200))
    assert cycle.unanswered() == "sending its response"
    await cycle.send(body(b"x", more=True))
    assert cycle.unanswered() is None  # some of it went out: cut off, not unanswered
