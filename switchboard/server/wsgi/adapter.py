"""Serve a WSGI application (PEP 3333) from the event loop, the way a threaded WSGI server would.

What runs where:

- **Event loop**: the request body is read and spooled (memory up to ``spool_max_memory``,
  then a temporary file), so a slow client never holds a thread.
- **One pool thread per request** (one hop): the environ is built, the application called, its
  body collected. A finite body (an iterable with ``len()``, PEP 3333's hint, e.g. a list)
  comes back to the loop in the same hop and goes out as one message; ``close()`` was already
  called in that thread. A streaming body is pulled in the thread and each chunk handed to the
  loop with back-pressure (the thread waits until the loop has written it); a client that goes
  away ends the iteration. ``close()`` is always called, in the thread that ran the app (which
  is what DB-connection cleanup bound to threads needs).
- ``wsgi.file_wrapper`` on a real, unread file becomes ``http.response.pathsend`` when the
  server offers it (zero-copy there), else the file is read in blocks in the thread.
- Extension: an iterable with ``__aiter__`` and no ``__iter__`` is consumed on the event loop
  (no thread held while it waits); its ``close()`` then runs in a pool thread.

The pool (``switchboard.server.wsgi.thread_pool``) is bounded and per process; beyond
``concurrency``, requests wait for a turn to compute (``compute_turns``), holding no thread
meanwhile. Nothing here
knows about any framework.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from switchboard.server.asgi.http_cycle import watch_disconnect
from switchboard.server.asgi.lifespan import acknowledge_lifespan
from switchboard.server.runtime.serving import websockets_open
from switchboard.server.wsgi.compute_turns import (
    CONCURRENCY_GRACE,
    DEFAULT_CONCURRENCY,
    ComputeTurns,
    TurnTicket,
)
from switchboard.server.wsgi.environ import SPOOL_MAX_MEMORY, FileWrapper, build_environ, read_body
from switchboard.server.wsgi.thread_pool import LoopJob, ThreadPool, default_executor

__all__ = ["ThreadSetup", "WSGIAdapter"]

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
# Called in the pool thread before each request, with the server's loop.
ThreadSetup = Callable[[asyncio.AbstractEventLoop], None]

_FINITE_JOIN_LIMIT = 1 << 20  # a finite body up to this size goes out as one write


class _Response:
    """What ``start_response`` collected, shared between the thread and the loop."""

    __slots__ = ("status", "headers", "sent", "written")

    def __init__(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.sent = False  # the head went out (exc_info can no longer replace it)
        self.written: list[bytes] = []  # legacy write() data, ahead of the iterable


class _Done:
    """A finite response, ready to be written by the loop."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class _AsyncBody:
    __slots__ = ("response", "iterable")

    def __init__(self, response: _Response, iterable: Any) -> None:
        self.response = response
        self.iterable = iterable


class _Streamed:
    """The thread sent everything itself."""


class _ClientGone(Exception):
    """``send`` failed because the client went away: stop producing, quietly."""


_STREAMED = _Streamed()


class WSGIAdapter:
    """An ASGI application that serves the WSGI application ``app`` (see the module docs).

    ``executor``: the pool (default: the process-wide one, of ``threads`` threads unless the
    server's ``--threads`` says otherwise, created in each process as it first serves).
    ``thread_setup`` is called in the pool thread before each request, with the server's
    loop; the application runs in a copy of the request's contextvars.

    ``concurrency``: how many requests compute in the pool at once; the others wait for a
    turn, in order (``switchboard.server.wsgi.compute_turns`` says why and how); ``grace``: how
    often the loop looks whether one computing waits instead. ``0`` lets every request run at
    once (the pool's size is then the only bound).
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        executor: ThreadPool | None = None,
        threads: int | None = None,
        thread_setup: ThreadSetup | None = None,
        spool_max_memory: int = SPOOL_MAX_MEMORY,
        concurrency: int = DEFAULT_CONCURRENCY,
        grace: float = CONCURRENCY_GRACE,
    ) -> None:
        if concurrency < 0:
            raise ValueError("concurrency must be 0 (unbounded) or more")
        self.app = app
        self.executor = executor
        self.threads = threads
        self.thread_setup = thread_setup
        self.spool_max_memory = spool_max_memory
        self.concurrency = concurrency
        self._turns = ComputeTurns(concurrency, grace) if concurrency else None

    def _job(
        self, loop: asyncio.AbstractEventLoop, fn: Callable[[], Any]
    ) -> tuple[asyncio.Future, LoopJob]:
        """``fn`` as a job for the pool: in the request's contextvars, after thread_setup."""
        future = loop.create_future()
        context = contextvars.copy_context()
        setup = self.thread_setup
        if setup is None:
            return future, (loop, future, partial(context.run, fn))

        def in_thread() -> Any:
            setup(loop)
            return context.run(fn)

        return future, (loop, future, in_thread)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await acknowledge_lifespan(receive, send)  # WSGI has no lifespan of its own
            return
        if kind != "http":
            raise ValueError(f"A WSGI application can only serve HTTP, not {kind!r}")
        body = await read_body(receive, self.spool_max_memory)
        if body is None:
            return  # the client went away before its request was complete
        loop = asyncio.get_running_loop()
        pathsend = "http.response.pathsend" in (scope.get("extensions") or {})
        pool = self._pool()
        turns = self._turns
        started = False
        if turns is None:

            def at_once() -> Any:
                nonlocal started
                if outcome_future.cancelled():
                    return None  # given up on while it waited for a thread
                started = True
                return self._serve(scope, body, send, loop, pathsend)

            outcome_future, job = self._job(loop, at_once)
            pool.start(job)
        else:
            ticket = TurnTicket()

            def in_turn() -> Any:
                nonlocal started
                try:
                    if outcome_future.cancelled():
                        return None  # given up on while it waited for its turn
                    started = True
                    ticket.start_clock()
                    return self._serve(scope, body, send, loop, pathsend)
                finally:
                    successor = turns.leave(ticket)
                    if successor is not None:
                        self._pass_on(loop, pool, successor)

            outcome_future, job = self._job(loop, in_turn)
            turns.enter(ticket, job, pool)
            turns.watch(loop, pool)

        gone = False

        def client_gone() -> None:
            # A request still waiting for a thread (or its turn) when its client leaves is
            # never run: nobody would read its response, and queued behind slow ones it kept
            # later clients waiting. One already running goes on: WSGI can't stop it; its
            # writes fail once it sends.
            nonlocal gone
            if not started:
                gone = True
                outcome_future.cancel()

        watch_disconnect(receive, client_gone)
        try:
            outcome = await outcome_future
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if gone and task is not None and not task.cancelling():
                # Not closed here: a thread may have taken the job as it was given up on (it
                # then runs, and its outcome is dropped). The garbage collector closes it.
                return
            body.close()
            raise
        except BaseException:
            body.close()
            raise
        body.close()
        if isinstance(outcome, _Done):
            await send(
                {"type": "http.response.start", "status": outcome.status,
                 "headers": outcome.headers}
            )  # fmt: skip
            await send({"type": "http.response.body", "body": outcome.body})
        elif isinstance(outcome, _AsyncBody):
            await self._send_async(outcome, send)

    @staticmethod
    def _pass_on(loop: asyncio.AbstractEventLoop, pool: ThreadPool, successor: LoopJob) -> None:
        """In the pool thread, after a request: start the one that now has the turn."""
        if not websockets_open():
            pool.run_next(successor)  # this thread runs it: no thread to wake, caches warm
            return
        # While WebSockets share the loop, the next request starts from the loop, after it
        # has polled its sockets once: run back to back, requests left the loop so little of
        # the GIL that WebSocket echo fell to a twentieth (bench/django_http.py).
        try:
            loop.call_soon_threadsafe(loop.call_soon, pool.start, successor)
        except RuntimeError:  # the loop is closed
            pool.run_next(successor)

    def _pool(self) -> ThreadPool:
        return self.executor or default_executor(self.threads)

    def _run_in_pool(self, fn: Callable[[], Any]) -> asyncio.Future:
        future, job = self._job(asyncio.get_running_loop(), fn)
        self._pool().start(job)
        return future

    # -- in the pool thread ----------------------------------------------

    def _serve(
        self,
        scope: dict[str, Any],
        body: Any,
        send: Any,
        loop: asyncio.AbstractEventLoop,
        pathsend: bool,
    ) -> _Done | _AsyncBody | _Streamed:
        response = _Response()

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None):
            if exc_info is not None:
                try:
                    if response.sent:
                        raise exc_info[1].with_traceback(exc_info[2])
                finally:
                    exc_info = None  # no reference cycle through the traceback
            elif response.status:
                raise RuntimeError("start_response() called twice without exc_info")
            response.status = int(status.split(" ", 1)[0])
            response.headers = [
                (name.encode("latin-1"), value.strip().encode("latin-1")) for name, value in headers
            ]
            return response.written.append

        result = self.app(build_environ(scope, body), start_response)
        if hasattr(result, "__aiter__") and not hasattr(result, "__iter__"):
            return _AsyncBody(response, result)
        try:
            if isinstance(result, FileWrapper) and pathsend:
                path = result.sendable_path()
                if path is not None:
                    self._blocking_send(loop, send, response, None)
                    self._call(loop, send, {"type": "http.response.pathsend", "path": path})
                    return _STREAMED
            finite = _finite(result)
            if finite is not None:
                data = b"".join([*response.written, *finite])
                if len(data) <= _FINITE_JOIN_LIMIT:
                    if not response.status:
                        raise RuntimeError("The WSGI application did not call start_response()")
                    return _Done(response.status, response.headers, data)
                self._blocking_send(loop, send, response, data, more=False)
                return _STREAMED
            self._stream(loop, send, response, result)
            return _STREAMED
        except _ClientGone:
            return _STREAMED
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()

    def _stream(self, loop: Any, send: Any, response: _Response, result: Iterable[bytes]) -> None:
        pending = b"".join(response.written)
        started = False
        for chunk in result:
            if not chunk:
                continue
            if not started:
                # The head goes with the first non-empty chunk (PEP 3333: not before).
                self._blocking_send(loop, send, response, pending + chunk, more=True)
                started = True
            else:
                self._call(loop, send, {"type": "http.response.body", "body": chunk,
                                        "more_body": True})  # fmt: skip
        if not started:
            self._blocking_send(loop, send, response, pending, more=False)
        else:
            self._call(loop, send, {"type": "http.response.body", "body": b""})

    def _blocking_send(
        self, loop: Any, send: Any, response: _Response, body: bytes | None, more: bool = True
    ) -> None:
        if not response.status:
            raise RuntimeError("The WSGI application did not call start_response()")
        response.sent = True
        start = {"type": "http.response.start", "status": response.status,
                 "headers": response.headers}  # fmt: skip
        self._call(loop, send, start)
        if body is not None:
            self._call(loop, send, {"type": "http.response.body", "body": body,
                                    "more_body": more})  # fmt: skip

    @staticmethod
    def _call(loop: asyncio.AbstractEventLoop, send: Any, message: dict[str, Any]) -> None:
        # Back-pressure: wait until the loop has taken (and, when the socket is slow, drained)
        # the chunk. A client that left makes send() raise, which ends the iteration.
        try:
            asyncio.run_coroutine_threadsafe(send(message), loop).result()
        except OSError as exc:  # the server's "client disconnected"
            raise _ClientGone from exc

    # -- on the loop -----------------------------------------------------

    async def _send_async(self, outcome: _AsyncBody, send: Any) -> None:
        response, iterable = outcome.response, outcome.iterable

        async def emit(body: bytes, more: bool = True) -> None:
            try:
                await send({"type": "http.response.body", "body": body, "more_body": more})
            except OSError as exc:  # the server's "client disconnected"
                raise _ClientGone from exc

        iterator = iterable.__aiter__()
        try:
            if not response.status:
                raise RuntimeError("The WSGI application did not call start_response()")
            response.sent = True
            await send({"type": "http.response.start", "status": response.status,
                        "headers": response.headers})  # fmt: skip
            if response.written:
                await emit(b"".join(response.written))
            while True:
                try:
                    chunk = await iterator.__anext__()
                except StopAsyncIteration:
                    break
                if chunk:
                    await emit(chunk)
            await emit(b"", more=False)
        except _ClientGone:
            pass
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()
            close = getattr(iterable, "close", None)
            if close is not None:
                await self._run_in_pool(close)


def _finite(result: Any) -> list[bytes] | None:
    """The chunks of a body known to be finite (it has a ``len()``), else ``None``."""
    try:
        len(result)
    except TypeError:
        return None
    return list(result)
