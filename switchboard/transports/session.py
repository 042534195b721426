"""One transport session: the project's websocket application run for an HTTP client.

The application talks ASGI websocket as usual. What it sends goes into a bounded
:class:`~switchboard.transports.buffer.OutBuffer` (``send`` never waits for the client); the
SSE stream or the poll answers take frames from there. What the client POSTs is queued for
its ``receive``. States::

    CONNECTING --accept--> OPEN --app closes / overflow--> CLOSING --client told--> CLOSED
        |                    |                                                      ^
        +--refused-----------+--client gone (stream lost, poll idle)----------------+

The session is freed (``on_free``) once it is CLOSED and its application has returned.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from .buffer import Frame, OutBuffer
from .settings import TransportSettings
from .stats import stats

__all__ = ["Refusal", "Session", "SessionClosed", "SessionState"]

logger = logging.getLogger("switchboard.transports")

ABNORMAL = 1006  # the stream was lost
GOING_AWAY = 1001  # no poll came in time, or the server is shutting down
TRY_AGAIN_LATER = 1013  # the client fell too far behind: its buffer overflowed
# Frames buffered in a row after which the application's send yields to the writer.
YIELD_EVERY = 64
# Seconds an application gets to return after the client has gone before it is cancelled.
APP_CLOSE_TIMEOUT = 10.0


class SessionState(enum.Enum):
    CONNECTING = "connecting"  # the application has not answered the handshake
    OPEN = "open"  # accepted: frames go both ways
    CLOSING = "closing"  # the application closed (or overflowed): the client is being told
    CLOSED = "closed"  # the client knows, or is gone; nothing more goes out


CONNECTING, OPEN, CLOSING, CLOSED = (
    SessionState.CONNECTING,
    SessionState.OPEN,
    SessionState.CLOSING,
    SessionState.CLOSED,
)


class Signal:
    """Set when a writer has something new to look at. Lighter than an ``asyncio.Event`` (no
    deque of waiters, no task per wait): a session has one writer at a time, which waits on
    :meth:`future` with ``asyncio.wait`` (futures, not coroutines: no task is made)."""

    __slots__ = ("_flag", "_waiter")

    def __init__(self) -> None:
        self._flag = False
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        self._flag = True
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._flag = False

    def is_set(self) -> bool:
        return self._flag

    def future(self) -> asyncio.Future[None]:
        """Done when the signal is (or once it is) set."""
        waiter = asyncio.get_running_loop().create_future()
        if self._flag:
            waiter.set_result(None)
        else:
            self._waiter = waiter
        return waiter


class SessionClosed(OSError):
    """A send after the session ended (an OSError, as the server's "client disconnected"
    error is: consumers drop such sends)."""


@dataclass
class Refusal:
    """The HTTP answer to a handshake the application did not accept."""

    status: int = 403
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""


class Session:
    """See the module docstring. ``token`` is set by the host that registers the session."""

    # Slots: an idle SSE client is mostly its session; no per-instance dict.
    __slots__ = (
        "_cancel_handle", "_counted", "_disconnect", "_disconnect_sent", "_freed",
        "_idle_handle", "_inbound", "_poll", "_reader", "_refusal", "changed", "close",
        "handshake", "loop", "on_free", "out", "scope", "settings", "sid", "state", "task",
        "token", "transport",
    )  # fmt: skip

    def __init__(
        self, sid: str, transport: str, scope: dict[str, Any], settings: TransportSettings
    ) -> None:
        loop = asyncio.get_running_loop()
        self.loop = loop
        self.sid = sid
        self.token = ""
        self.transport = transport
        self.scope = scope
        self.settings = settings
        self.state = CONNECTING
        # Resolves with None once accepted, or with the Refusal.
        self.handshake: asyncio.Future[Refusal | None] = loop.create_future()
        self.out = OutBuffer(settings.max_buffered_frames, settings.max_buffered_bytes)
        self.close: tuple[int, str] | None = None  # what the client is told at the end
        self.changed = Signal()  # set whenever a writer has something new to look at
        self.on_free: Callable[[Session], None] | None = None
        self.task: asyncio.Task[None] | None = None
        # Few and short-lived: a list costs less than a deque for the many idle sessions.
        self._inbound: list[dict[str, Any]] = []
        self._reader: asyncio.Future[None] | None = None
        self._disconnect: dict[str, Any] | None = None
        self._disconnect_sent = False
        self._refusal: Refusal | None = None  # a denial response being collected
        self._counted = False  # in stats.sessions_open
        self._freed = False
        self._cancel_handle: asyncio.TimerHandle | None = None
        self._idle_handle: asyncio.TimerHandle | None = None
        self._poll: asyncio.Future[None] | None = None  # the waiting poll's "superseded" signal

    # -- running the application -----------------------------------------------------------

    def start(self, app: Any) -> None:
        self._inbound.append({"type": "websocket.connect"})
        self.task = self.loop.create_task(self._run(app), name=f"switchboard-transport-{self.sid}")

    async def _run(self, app: Any) -> None:
        try:
            await app(self.scope, self._receive, self._send)
        except asyncio.CancelledError:
            self._app_ended(1011, raised=True)
            raise
        except Exception:
            logger.exception("Transport session application raised (%s)", self.scope.get("path"))
            self._app_ended(1011, raised=True)
        else:
            self._app_ended(1000)
        finally:
            self.task = None
            self._maybe_free()

    def _app_ended(self, code: int, raised: bool = False) -> None:
        if self.state is CONNECTING:
            self._refuse(Refusal(500 if raised else 403))
        elif self.state is OPEN:
            self._closing(code, "")
        if self._cancel_handle is not None:
            self._cancel_handle.cancel()
            self._cancel_handle = None

    async def _receive(self) -> dict[str, Any]:
        while True:
            if self._inbound:
                return self._inbound.pop(0)
            if self._disconnect is not None:
                if self._disconnect_sent:
                    # One disconnect event (ASGI); after it, wait to be cancelled rather than
                    # let an application looping on receive() spin.
                    await self.loop.create_future()
                self._disconnect_sent = True
                return self._disconnect
            self._reader = self.loop.create_future()
            try:
                await self._reader
            finally:
                self._reader = None

    def _wake_reader(self) -> None:
        if self._reader is not None and not self._reader.done():
            self._reader.set_result(None)

    def _queue_disconnect(self, code: int, reason: str = "") -> None:
        if self._disconnect is None:
            self._disconnect = {"type": "websocket.disconnect", "code": code, "reason": reason}
            self._wake_reader()

    async def _send(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        state = self.state
        if kind == "websocket.send" or kind == "sb.sse.event":
            if state is not OPEN:
                self._not_now(kind)
            frame: Frame
            if kind == "sb.sse.event":
                frame = {k: message.get(k) for k in ("id", "event", "data")}
                frame["type"] = kind
            elif message.get("bytes") is not None:
                frame = bytes(message["bytes"])
            else:
                frame = message.get("text") or ""
            out = self.out
            if not out.push(frame):
                self._overflow()
                return
            stats.frames_out[self.transport] += 1
            self.changed.set()
            if len(out) >= YIELD_EVERY and not len(out) % YIELD_EVERY:
                # A burst (a recovery replaying hundreds of publications in one go): let the
                # stream's writer drain the buffer meanwhile instead of filling it to its bound.
                await asyncio.sleep(0)
        elif kind == "websocket.accept":
            if state is not CONNECTING or self._refusal is not None:
                self._not_now(kind)
            self.state = OPEN
            stats.sessions_open[self.transport] += 1
            self._counted = True
            self.handshake.set_result(None)
        elif kind == "websocket.close":
            code, reason = message.get("code") or 1000, message.get("reason") or ""
            if state is CONNECTING and self._refusal is None:
                self._refuse(Refusal(403))
                self._queue_disconnect(code, reason)
            elif state is OPEN:
                self._closing(code, reason)
            elif state is CLOSED:
                raise SessionClosed("the transport session is closed")
        elif kind == "websocket.http.response.start":
            if state is not CONNECTING or self._refusal is not None:
                self._not_now(kind)
            headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", ())]
            self._refusal = Refusal(int(message["status"]), headers)
        elif kind == "websocket.http.response.body":
            refusal = self._refusal
            if refusal is None or state is not CONNECTING:
                self._not_now(kind)
            refusal.body += bytes(message.get("body", b""))
            if not message.get("more_body"):
                self._refuse(refusal)
                self._queue_disconnect(1000)
        else:
            raise RuntimeError(f"unexpected ASGI message type for a transport session: {kind!r}")

    def _not_now(self, kind: Any) -> NoReturn:
        if self.state is CLOSING or self.state is CLOSED:
            raise SessionClosed(f"cannot send {kind}: the transport session is closed")
        raise RuntimeError(f"cannot send {kind} in state {self.state.name}")

    def _refuse(self, refusal: Refusal) -> None:
        self.state = CLOSED
        if not self.handshake.done():
            self.handshake.set_result(refusal)

    def _closing(self, code: int, reason: str) -> None:
        """The application's side is over (it closed, returned, or overflowed)."""
        self.state = CLOSING
        self.close = (code, reason)
        self._queue_disconnect(code, reason)
        self.changed.set()

    def _overflow(self) -> None:
        # What is buffered is dropped: the client recovers from the history after it
        # reconnects, which beats letting one slow client hold memory without bound.
        stats.overflows[self.transport] += 1
        logger.warning("Transport session %s: client too slow, buffer full (1013)", self.sid)
        self.out.clear()
        self._closing(TRY_AGAIN_LATER, "buffer overflow")

    # -- the client's side -----------------------------------------------------------------

    def deliver(self, frames: list[str | bytes]) -> bool:
        """Queue POSTed frames for the application, in order; False once it cannot take them."""
        if self.state is not OPEN:
            return False
        for frame in frames:
            if isinstance(frame, bytes):
                self._inbound.append({"type": "websocket.receive", "bytes": frame})
            else:
                self._inbound.append({"type": "websocket.receive", "text": frame})
        stats.frames_in[self.transport] += len(frames)
        self._wake_reader()
        return True

    def going_away(self) -> None:
        """The server is shutting down: the application gets 1001 and the client is told
        (``sb.close`` on a stream, ``close`` in the poll answer), as a WebSocket gets 1001."""
        if self.state is OPEN:
            self._closing(GOING_AWAY, "server shutting down")
        elif self.state is CONNECTING:
            self.lost(GOING_AWAY, "server shutting down")

    def lost(self, code: int, reason: str = "") -> None:
        """The client is gone (``code``: 1006 stream lost, 1001 poll idle, 1000 it said so)."""
        if self.state is CLOSED:
            return
        if self.state is CONNECTING:
            self._refuse(Refusal(403))
        self.state = CLOSED
        self._queue_disconnect(code, reason)
        self.changed.set()
        self._client_done()

    def _client_done(self) -> None:
        self.state = CLOSED
        self._disarm_idle()
        if self._poll is not None and not self._poll.done():
            self._poll.set_result(None)
        if self.task is not None and self._cancel_handle is None:
            self._cancel_handle = self.loop.call_later(APP_CLOSE_TIMEOUT, self._cancel_app)
        self._maybe_free()

    def _cancel_app(self) -> None:
        if self.task is not None:
            logger.warning("Transport session %s: application ignored disconnect", self.sid)
            self.task.cancel()

    def _maybe_free(self) -> None:
        if self._freed or self.state is not CLOSED or self.task is not None:
            return
        self._freed = True
        self._disarm_idle()
        if self._counted:
            stats.sessions_open[self.transport] -= 1
        if self.on_free is not None:
            self.on_free(self)

    # -- writers: the SSE stream, poll answers --------------------------------------------

    def take(self) -> tuple[list[Frame], tuple[int, str] | None]:
        """For a stream: every frame buffered (forgotten now), and the close once all went."""
        frames = [frame for _, frame in self.out.since(0)]
        self.out.ack(self.out.seq)
        self.changed.clear()
        close = None
        if self.state is CLOSING and self.close is not None:
            close = self.close
            self._client_done()
        return frames, close

    async def poll(self, ack: int, timeout: float) -> dict[str, Any]:
        """A long-poll answer: frames after ``ack`` (waiting up to ``timeout`` for some)."""
        if self._poll is not None and not self._poll.done():
            self._poll.set_result(None)  # a second poll answers the first at once
        me: asyncio.Future[None] = self.loop.create_future()
        self._poll = me
        self._disarm_idle()
        ack = max(0, min(ack, self.out.seq))
        self.out.ack(ack)
        deadline = self.loop.time() + timeout
        try:
            while True:
                self.changed.clear()
                pending = self.out.since(ack)
                closing = self.state is CLOSING or (self.state is CLOSED and self.close)
                if pending or closing or me.done():
                    break
                left = deadline - self.loop.time()
                if left <= 0:
                    break
                changed = self.changed.future()
                try:
                    await asyncio.wait((changed, me), timeout=left, return_when="FIRST_COMPLETED")
                finally:
                    changed.cancel()
            if me.done() and not closing:
                return {"seq": ack, "frames": []}
            answer: dict[str, Any] = {
                "seq": pending[-1][0] if pending else ack,
                "frames": [_json_frame(frame) for _, frame in pending],
            }
            if closing and self.close is not None:
                code, reason = self.close
                answer["close"] = {"code": code, "reason": reason}
                self._client_done()
            return answer
        finally:
            if self._poll is me:
                self._poll = None
                self.arm_idle()

    def arm_idle(self) -> None:
        """No poll waits: the session ends unless one comes within the idle time."""
        if self.state is CLOSED or self._idle_handle is not None:
            return
        self._idle_handle = self.loop.call_later(
            self.settings.poll_idle, self.lost, GOING_AWAY, "no poll"
        )

    def _disarm_idle(self) -> None:
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None


def _json_frame(frame: Frame) -> Any:
    if isinstance(frame, bytes):
        return {"b": base64.b64encode(frame).decode("ascii")}
    return frame
