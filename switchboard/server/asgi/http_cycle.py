"""The ASGI ``http`` request/response cycle as a state machine, whatever the HTTP version.

:class:`HttpCycle` holds the rules the ASGI HTTP spec (and RFC 9110) sets for one request:

* ``receive()``: the request body in ``http.request`` messages, then, once the whole body was
  handed over, a wait until the client leaves or the response is complete, and
  ``http.disconnect``;
* ``send()``: ``http.response.start`` (a final status 200..599; a second one is refused), body
  messages (bytes only, held to the app's content-length, no content for HEAD, 204 and 304),
  ``http.response.pathsend``, then ``http.response.trailers`` only when the start asked for
  them; every message refused with :class:`InvalidResponse` has no effect.

What goes on the wire is the subclass's business: the HTTP/1.1 request
(``http11_request.Http11Request``) frames bytes on its connection, the HTTP/2 stream
(``h2.stream.HttpStream``) makes ``h2`` calls. The subclass is the cycle's *writer*:
``send()`` hands it version-independent events through the hooks listed in
:class:`CycleWriter`. (A subclass rather than a separate writer object: one allocation and
no extra indirection per request on the hot path.)
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from switchboard.server.asgi.errors import ClientDisconnected
from switchboard.server.asgi.types import HeaderIterable, Message, Scope
from switchboard.server.wire.http11_framing import InvalidResponse, check_field

__all__ = ["CycleState", "CycleWriter", "HttpCycle"]

_BYTES_LIKE = (bytes, bytearray, memoryview)


class CycleState(enum.Enum):
    """Where the response is: what ``send()`` accepts next."""

    START = "start"  # nothing accepted yet: http.response.start
    BODY = "body"  # started: body messages (or pathsend) until more_body=False
    TRAILERS = "trailers"  # final body sent, trailers asked for: http.response.trailers
    DONE = "done"  # complete (or cut off): nothing more


# Module names for the members: a state check is one global load and one ``is``.
START = CycleState.START
BODY = CycleState.BODY
TRAILERS = CycleState.TRAILERS
DONE = CycleState.DONE


class CycleWriter(Protocol):
    """The events an :class:`HttpCycle` hands its version-specific side (its subclass).

    The body and trailers hooks return ``None`` when they are done, or an awaitable that
    ``send()`` awaits (back-pressure, flow-control windows): the common case costs no await.
    """

    def _head(self, status: int, headers: HeaderIterable) -> int | None:
        """Check the start's header fields and keep the response head until the first body
        message; return the app's content-length, if any. Raises InvalidResponse."""

    def _body(self, body: bytes | bytearray | memoryview, more: bool) -> Awaitable[None] | None:
        """A body message (already checked and counted; the head goes out with the first)."""

    async def _file(self, path: Any) -> None:
        """http.response.pathsend: the file is the rest of the body (the writer opens it and
        holds it to the content-length with :meth:`HttpCycle.count_down`)."""

    def _trailers(self, fields: HeaderIterable, more: bool) -> Awaitable[None] | None:
        """Trailer fields (already checked); ``more``: more trailers messages follow."""

    def _done(self) -> None:
        """The response is complete."""

    def _continue(self) -> None:
        """The app reads a body the client waits to be asked for (Expect: 100-continue)."""

    def _reading(self) -> None:
        """``receive()`` is about to wait for request body."""

    def _taken(self) -> None:
        """``receive()`` handed the buffered request body to the app."""


class HttpCycle:
    """One ASGI http request/response cycle: ``receive`` and ``send`` and their state.

    The connection feeds the request side with ``body.append(...)``, ``complete`` and
    ``disconnected`` (then ``wake()``); subclasses implement the :class:`CycleWriter` hooks.
    """

    __slots__ = (
        "loop",
        "scope",
        "state",
        "body",
        "complete",
        "body_done",
        "disconnected",
        "disconnect_reported",
        "on_disconnect",
        "waiter",
        "expect_continue",
        "status",
        "no_content",
        "tunnel",
        "length",
        "trailers",
        "wrote",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, scope: Scope) -> None:
        self.loop = loop
        self.scope = scope
        self.state = START
        # Request body not handed over yet. A list, not a deque: it is only appended to and
        # emptied whole, and an empty deque costs some 600 bytes per request held open.
        self.body: list[bytes] = []
        self.complete = False  # the client sent the whole request body
        self.body_done = False  # the final http.request (more_body=False) was handed over
        self.disconnected = False  # the client is gone: send() refuses, receive() says so
        self.disconnect_reported = False  # receive() returned http.disconnect once
        self.on_disconnect: Callable[[], None] | None = None  # see watch_disconnect()
        self.waiter: asyncio.Future[None] | None = None
        self.expect_continue = False  # the client waits for 100 Continue before its body
        self.status = 0
        method = scope["method"]
        self.no_content = method == "HEAD"  # no body bytes go out: HEAD, 204, 304
        self.tunnel = method == "CONNECT"
        self.length: int | None = None  # body bytes still owed under the app's content-length
        self.trailers = False  # the start asked for trailers
        self.wrote = False  # some of the response went out: no 500 possible any more

    # -- request side ---------------------------------------------------------------------

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self.on_disconnect is not None and self.disconnected:
            callback, self.on_disconnect = self.on_disconnect, None
            callback()

    async def receive(self) -> Message:
        if self.expect_continue:
            self.expect_continue = False
            if self.state is START and not self.disconnected:
                self._continue()
        if not self.body_done:
            while not self.disconnected and not self.body and not self.complete:
                self._reading()
                self.waiter = self.loop.create_future()
                await self.waiter
            body = self.body
            if body:
                data = body[0] if len(body) == 1 else b"".join(body)
                body.clear()
                self._taken()
                self.body_done = self.complete
                return {"type": "http.request", "body": data, "more_body": not self.complete}
            if self.complete and not self.disconnected:
                self.body_done = True
                return {"type": "http.request", "body": b"", "more_body": False}
        # The whole body was handed over: per the ASGI spec the next receive() waits for the
        # client to go away (or the response to finish) and then reports http.disconnect.
        while not self.disconnected and self.state is not DONE:
            self.waiter = self.loop.create_future()
            await self.waiter
        if self.disconnect_reported:
            # Every later receive() says http.disconnect again (apps poll it, as uvicorn's
            # and Starlette's users do), but yields first: an app looping on receive() must
            # not hold the event loop, and cancellation (SIGTERM) must reach it.
            await asyncio.sleep(0)
        self.disconnect_reported = True
        return {"type": "http.disconnect"}

    # -- response side --------------------------------------------------------------------

    async def send(self, message: Message) -> None:
        # A message refused with InvalidResponse has no effect: nothing of it goes out.
        if self.disconnected:
            raise ClientDisconnected("client disconnected")
        kind = message["type"]
        state = self.state
        if state is BODY:
            if kind == "http.response.body":
                body = message.get("body", b"")
                more = message.get("more_body", False)
                if body.__class__ is not bytes and not isinstance(body, _BYTES_LIKE):
                    raise InvalidResponse(f"http.response.body must be bytes, not {type(body)!r}")
                length = self.length
                if length is not None:
                    size = len(body)
                    if size > length or (size < length and not more):
                        self.count_down(size, more)  # raises
                    self.length = length - size
                wait = self._body(body, more)
                if wait is not None:
                    await wait
                if more:
                    return
            elif kind == "http.response.pathsend":
                await self._file(message["path"])
            else:
                raise InvalidResponse(f"Expected 'http.response.body', got {kind!r}")
            if self.trailers:
                self.state = TRAILERS  # the response ends with the last trailers message
            else:
                self.finish()
            return
        if state is START:
            if kind != "http.response.start":
                raise InvalidResponse(f"Expected 'http.response.start', got {kind!r}")
            self._start(message)
            return
        if state is TRAILERS:
            if kind != "http.response.trailers":
                raise InvalidResponse(f"Expected 'http.response.trailers', got {kind!r}")
            fields = message.get("headers", ())
            for name, value in fields:
                check_field(name, value)
            more = message.get("more_trailers", False)
            wait = self._trailers(fields, more)
            if wait is not None:
                await wait
            if not more:
                self.finish()
            return
        raise InvalidResponse(f"Unexpected {kind!r}: the response is complete")

    def _start(self, message: Message) -> None:
        status = message["status"]
        if status.__class__ is not int:
            status = final_status(status)
        elif not 200 <= status < 600:
            # A 1xx is interim (RFC 9110 section 15.2): the client would wait for a final
            # response that never comes and take the next one for it.
            raise InvalidResponse(f"Invalid status for a final response: {status!r}")
        if self.tunnel and status < 300:
            # A 2xx to CONNECT makes the connection a tunnel (RFC 9110 section 9.3.6); ASGI
            # has none to offer, and the client would send its tunnel bytes into the void.
            raise InvalidResponse("A 2xx response to CONNECT would open a tunnel")
        length = self._head(status, message.get("headers", ()))
        self.status = status
        if status == 204 or status == 304:  # never content (RFC 9110 sections 15.3.5, 15.4.5)
            self.no_content = True
        # With no content to send, a content-length describes the representation (HEAD, 304)
        # and is not ours to count down.
        self.length = None if self.no_content else length
        if message.get("trailers"):
            self.trailers = True
        self.state = BODY

    def count_down(self, size: int, more: bool) -> None:
        """Hold the body to the app's content-length (RFC 9110 section 8.6): never more bytes
        than announced, never fewer before the end."""
        length = self.length
        if length is None:
            return
        if size > length:
            raise InvalidResponse("Response body longer than its content-length")
        if not more and size < length:
            raise InvalidResponse("Response body shorter than its content-length")
        self.length = length - size

    def finish(self) -> None:
        """The response is complete: receive() may report http.disconnect now."""
        self.state = DONE
        self.wake()
        self._done()

    def unanswered(self) -> str | None:
        """What the app failed to do when it returned with the response neither complete nor
        cut off by the client (``None``: nothing of the kind)."""
        if self.state is DONE or self.disconnected or self.wrote:
            return None
        return "starting a response" if self.state is START else "sending its response"

    # -- the writer's hooks (see CycleWriter) ---------------------------------------------

    def _head(self, status: int, headers: HeaderIterable) -> int | None:
        raise NotImplementedError

    def _body(self, body: bytes | bytearray | memoryview, more: bool) -> Awaitable[None] | None:
        raise NotImplementedError

    async def _file(self, path: Any) -> None:
        raise NotImplementedError

    def _trailers(self, fields: HeaderIterable, more: bool) -> Awaitable[None] | None:
        raise NotImplementedError

    def _done(self) -> None:
        pass

    def _continue(self) -> None:
        pass

    def _reading(self) -> None:
        pass

    def _taken(self) -> None:
        pass


def final_status(status: Any) -> int:
    """A status given as an int subclass (``HTTPStatus``), as an int; anything that is no
    final status raises InvalidResponse."""
    if not isinstance(status, int) or isinstance(status, bool) or not 200 <= status < 600:
        raise InvalidResponse(f"Invalid status for a final response: {status!r}")
    return int(status)


def watch_disconnect(receive: Any, callback: Callable[[], None]) -> bool:
    """Have ``callback`` called (once, on the loop) when the client of the request whose
    ``receive`` this is goes away. False when ``receive`` is not this server's (an app wrapped
    it): the caller then learns of the disconnect from ``receive()`` alone.

    For the server's own WSGI adapter, whose request may wait for a thread after its body was
    read: ASGI has no way to hear of a disconnect but a ``receive()`` call waiting in a task
    of its own, which every request would pay for.
    """
    cycle = getattr(receive, "__self__", None)
    if not isinstance(cycle, HttpCycle):
        return False
    if cycle.disconnected:
        callback()
    else:
        cycle.on_disconnect = callback
    return True
