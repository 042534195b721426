"""WebSocket connections: RFC 6455 via the ``websockets`` sans-I/O protocol, spoken as ASGI.

The HTTP protocol parses the upgrade request, builds the scope and hands the transport over to
:class:`WebSocketProtocol` (see ``handshake``). From there on these modules own the socket:

* ``ws_handshake``: the opening handshake, held until the application sends
  ``websocket.accept`` (101), ``websocket.close`` (403) or a ``websocket.http.response.*``
  denial response;
* ``ws_incoming``: incoming frames, simple ones parsed here (the per-message hot path), the
  rest of the stream by ``websockets`` from the first frame that is not simple;
* ``ws_keepalive``: pings and their timeout; ``ws_accounting``: counters and access log lines;
* this module: the asyncio callbacks, ``send`` (outgoing data frames without extensions are
  framed here and written straight to the transport, the hot path of every echo/broadcast
  workload), the application task (one per connection), closing and shutdown.

The ASGI side (the state, which message the application may send when, its ``receive`` with
the queue of unread messages) is the transport-independent
:class:`~switchboard.server.asgi.ws_cycle.WebSocketCycle`; the protocol owns the transport,
the timers and flow control, and does the I/O each state change asks for.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
from collections.abc import Awaitable, Coroutine
from http import HTTPStatus
from typing import Any

from websockets.protocol import State as WSProtocolState

from switchboard.server.asgi.errors import ClientDisconnected
from switchboard.server.asgi.types import Message
from switchboard.server.asgi.ws_cycle import (
    ABNORMAL,
    CLOSED,
    HANDSHAKE,
    OPEN,
    RESPONSE,
    UNANSWERED,
    Action,
)
from switchboard.server.connections.ws_handshake import OpeningHandshake
from switchboard.server.connections.ws_incoming import IncomingFrames
from switchboard.server.wire.ws_framing import BINARY_HEADERS, TEXT_HEADERS, frame_header

__all__ = ["WebSocketProtocol"]

logger = logging.getLogger("switchboard.server")
error_logger = logging.getLogger("switchboard.server.error")

TASK_NAME = "switchboard.websocket"  # of every application task

# Above this size a frame is written as header + payload instead of one concatenated buffer.
_CONCAT_LIMIT = 16384


class WebSocketProtocol(OpeningHandshake, IncomingFrames):
    """One WebSocket connection after the HTTP upgrade request has been parsed."""

    __slots__ = ()

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.flow.transport = self.transport
        self.server_state.connections.add(self)
        self.server_state.websockets += 1

    def connection_lost(self, exc: Exception | None) -> None:
        state = self.server_state
        state.connections.discard(self)
        state.websockets -= 1
        if self.accepted:
            self._count_close()
        self.flow.stop()
        for handle in (self.timer, self.close_timer):
            if handle is not None:
                handle.cancel()
        self.timer = self.close_timer = None
        if self.keepalive is not None:
            self.keepalive.stop()
        code, reason = ABNORMAL, ""
        ws = self.sansio
        if ws is not None and ws.close_rcvd is not None:
            code, reason = ws.close_rcvd.code, ws.close_rcvd.reason
        elif ws is not None and ws.close_sent is not None:
            code, reason = ws.close_sent.code, ws.close_sent.reason
        self.fast = False
        self.cycle.lost(code, reason)  # CLOSED: from here on nothing is written
        self._stop_fast_in()
        self.flow.release()
        task = self.task
        if task is not None and not task.done():
            # The application has been told; give it a bounded time to return.
            self.loop.call_later(self.config.application_close_timeout, self._cancel_app)

    def pause_writing(self) -> None:
        self.flow.pause_writing()

    def resume_writing(self) -> None:
        self.backlog = 0
        self.flow.resume_writing()

    def data_received(self, data: bytes) -> None:
        self.server_state.bytes_in += len(data)
        if self.fast_in:
            self._receive_fast(data)
        elif self.accepted:
            self._receive(data)
        elif self.cycle.state in UNANSWERED:
            # A client may not send frames before the 101; keep them, but not without bound.
            if self.pending is None:
                self.pending = []
            self.pending.append(data)
            self.flow.pause_reading()

    def eof_received(self) -> bool | None:
        if self.accepted:
            if self.fast_in:
                data, self.inbuf = self.inbuf, b""
                self._to_websockets(data)
            ws = self._frames()
            ws.receive_eof()
            self._flush(ws)
        return None  # close the transport

    # -- application side -------------------------------------------------------------------

    async def send(self, message: Message) -> None:
        """The ASGI ``send`` callable: ``websocket.send`` is framed here, the rest is rare."""
        kind = message["type"]
        if kind == "websocket.send":
            cycle = self.cycle
            if cycle.state is not OPEN:
                cycle.not_allowed(kind)
            if self.flow.writing_paused:
                await self._wait_for_client()
            text = message.get("text")
            if text is not None:
                payload = text.encode()
                first = 0x81
                headers = TEXT_HEADERS
            else:
                payload = message.get("bytes")
                if payload is None:
                    raise TypeError("websocket.send needs 'bytes' or 'text'")
                first = 0x82
                headers = BINARY_HEADERS
            cycle.sent += 1
            state = self.server_state
            state.ws_messages_out += 1
            if self.fast:
                size = len(payload)
                if size < 126:
                    data = headers[size] + payload
                    state.bytes_out += size + 2
                    self.transport.write(data)  # type: ignore[union-attr]
                else:
                    header = frame_header(first, size)
                    state.bytes_out += len(header) + size
                    transport = self.transport
                    assert transport is not None
                    if size <= _CONCAT_LIMIT:
                        transport.write(header + payload)
                    else:
                        # Two writes, not writelines: asyncio's writelines on Python 3.12 and
                        # 3.13.0 never pauses the protocol, so a client that does not read
                        # would have the whole flood buffered.
                        transport.write(header)
                        transport.write(payload)
            else:
                ws = self._frames()
                if first == 0x81:
                    ws.send_text(payload)
                else:
                    ws.send_binary(payload)
                self._flush(ws)
            return
        action = self.cycle.app_sends(kind)
        if action is Action.ACCEPT:
            self._accept(message)
        elif action is Action.CLOSE:
            self._close(message.get("code") or 1000, message.get("reason") or "")
        elif action is Action.REJECT:
            self._reject(HTTPStatus.FORBIDDEN, "WebSocket connection rejected.\n")
        elif action is Action.START_RESPONSE:
            self._start_denial(message)
        elif action is Action.RESPONSE_BODY:
            self._denial_body(message)
        # Action.IGNORE: the closing handshake is under way already

    async def _wait_for_client(self) -> None:
        """Hold a send while the client's buffer is full, ``ws_send_timeout`` at most.

        Waits again after each wake-up while still paused: senders woken together write one
        at a time, so the buffer holds at most its high-water mark plus one message. A send
        still waiting when the timeout is up drops the client, and raises."""
        flow, cycle = self.flow, self.cycle
        timeout = self.config.ws_send_timeout
        if timeout:
            deadline = self.loop.time() + timeout
            while flow.writing_paused and not flow.stopped and cycle.state is OPEN:
                left = deadline - self.loop.time()
                if left <= 0 or not await flow.wait_writable(left):
                    self._drop_slow_client("send_timeout")
                    break
        else:
            while flow.writing_paused and not flow.stopped and cycle.state is OPEN:
                await flow.drain()
        if cycle.state is not OPEN:
            cycle.not_allowed("websocket.send")

    def _close(self, code: int, reason: str) -> None:
        ws = self._frames()
        # The peer's end of the stream may have been read a moment ago (websockets is CLOSED,
        # connection_lost not called yet): there is nothing left to send a close frame on.
        if ws.state is WSProtocolState.OPEN:
            ws.send_close(code, reason)
        self._close_app_side(code, reason)
        self._flush(ws)

    def _start_app(self) -> asyncio.Task[None]:
        """The application task.

        An application called as a coroutine function runs as the task's own coroutine, its
        outcome handled by a done callback in the task's context: a coroutine wrapping it
        (``_run_app``, for any other application) would cost every idle connection ~200
        bytes and every message a step more."""
        app = self.config.app
        if not _is_coroutine_app(app):
            return self._task(self._run_app())
        try:
            call = app(self.scope, self.cycle.receive, self.send)
        except Exception as exc:  # a bad signature, say: raised in the task, as usual
            return self._task(self._run_app(_raise(exc)))
        if not asyncio.iscoroutine(call):
            return self._task(self._run_app(call))
        context = contextvars.copy_context()
        task = self._task(call, context)
        task.add_done_callback(self._app_task_done, context=context)
        return task

    def _task(
        self, coro: Coroutine[Any, Any, None], context: contextvars.Context | None = None
    ) -> asyncio.Task[None]:
        loop = self.loop
        if loop.get_task_factory() is None:
            # What create_task does, named: a task without a name formats one of its own
            # ("Task-<n>", a string more per connection).
            return asyncio.Task(coro, loop=loop, name=TASK_NAME, context=context)
        return loop.create_task(coro, name=TASK_NAME, context=context)

    def _app_task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            self._app_ended(cancelled=True)
        else:
            self._app_ended(task.exception())

    async def _run_app(self, call: Awaitable[None] | None = None) -> None:
        try:
            if call is None:
                call = self.config.app(self.scope, self.cycle.receive, self.send)
            await call
        except asyncio.CancelledError:
            self._app_ended(cancelled=True)
            raise
        except BaseException as exc:
            self._app_ended(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            self._app_ended()

    def _app_ended(self, error: BaseException | None = None, cancelled: bool = False) -> None:
        """The application returned, raised ``error`` or was cancelled."""
        try:
            if cancelled:
                if self.cycle.state is not CLOSED:
                    self._app_failed(cancelled=True)
            elif isinstance(error, ClientDisconnected):
                # A send after the client left, not caught by the app: the client's departure
                # is not an application error, so no traceback.
                logger.debug("ASGI application stopped: the WebSocket client disconnected")
                self._app_failed()
            elif isinstance(error, Exception):
                error_logger.error("Exception in ASGI application", exc_info=error)
                self._app_failed()
            elif error is None:
                state = self.cycle.state
                if state is HANDSHAKE:
                    error_logger.error("ASGI application returned without accepting the WebSocket")
                    self._reject(HTTPStatus.INTERNAL_SERVER_ERROR, "Internal Server Error\n")
                elif state is RESPONSE:
                    error_logger.error("ASGI application returned before its response ended")
                    self._abort()
                elif state is OPEN:
                    self._close(1000, "")
        finally:
            self.app_done = True
            self.scope = {}
            # (A task cancelled before it ever ran, at shutdown, stays in the set: the server
            # is going away with it.)
            self.server_state.tasks.discard(self.task)

    def _app_failed(self, cancelled: bool = False) -> None:
        state = self.cycle.state
        if state is HANDSHAKE:
            self._reject(HTTPStatus.INTERNAL_SERVER_ERROR, "Internal Server Error\n")
        elif state is RESPONSE:
            self._abort()
        elif state is OPEN:
            self._close(1011, "")

    def _abort(self) -> None:
        if self.cycle.state is RESPONSE:  # a denial response cut short: no handshake line
            self.server_state.ws_handshake_failures += 1
        self._close_app_side(ABNORMAL, "")
        if self.transport is not None and self.cycle.state is not CLOSED:
            self.transport.abort()

    def _cancel_app(self) -> None:
        task = self.task
        if task is not None and not task.done():
            error_logger.warning(
                "WebSocket application still running %ss after the connection closed; "
                "cancelling it",
                self.config.application_close_timeout,
            )
            task.cancel()

    # -- flow control & shutdown ------------------------------------------------------------

    def shutdown(self) -> None:
        """Graceful close requested by the server: 1001 to the client and to the app."""
        state = self.cycle.state
        if state is CLOSED:
            return
        if state is HANDSHAKE:
            self._reject(HTTPStatus.SERVICE_UNAVAILABLE, "Server shutting down.\n", 1001)
        elif state is RESPONSE:
            pass  # let the denial response finish; the transport closes right after it
        elif state is OPEN:
            self._close(1001, "server shutting down")
        elif self.transport is not None:
            ws = self.sansio  # None after the 101: dropped while it had sent nothing
            if (ws.close_sent is None) if ws is not None else self.accepted:
                self.transport.close()


def _is_coroutine_app(app: Any) -> bool:
    """Whether calling ``app`` only makes a coroutine (an ``async def``, or an object whose
    class's ``__call__`` is one)."""
    if inspect.iscoroutinefunction(app):
        return True
    if inspect.isroutine(app):
        return False
    return inspect.iscoroutinefunction(getattr(type(app), "__call__", None))  # noqa: B004


async def _raise(error: Exception) -> None:
    raise error
