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

The pool is bounded and per process (created lazily, so forked workers each get their own); its
threads are daemons, so a request stuck forever cannot keep the process alive once the server
has given up on it. Beyond ``concurrency``, requests wait for a turn to compute in the pool
(see :class:`WSGIAdapter`). Nothing here knows about any framework.
"""

from __future__ import annotations

import asyncio
import contextvars
import io
import os
import queue
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Executor, Future
from typing import Any

from switchboard.server.state import websockets_open

__all__ = [
    "CONCURRENCY_GRACE",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_THREADS",
    "FileWrapper",
    "SyncRunner",
    "WSGIAdapter",
    "WorkerPool",
    "build_environ",
    "default_executor",
    "is_wsgi_application",
    "set_default_threads",
]

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
SyncRunner = Callable[[Callable[[], Any]], Awaitable[Any]]

DEFAULT_THREADS = 4  # see the module docs of switchboard.django_http for the measurement
# Requests that compute in the pool at once, and how often the loop looks whether the one
# computing now waits instead (see WSGIAdapter): bench/django_http.py has the measurements.
DEFAULT_CONCURRENCY = 1
CONCURRENCY_GRACE = 0.002
# A request keeps its turn to compute while its thread got at least this share of a CPU since
# the last look (or the GIL was busy anyway); less means it waits on I/O (see _Place.waiting).
BUSY_SHARE = 0.25
SPOOL_MAX_MEMORY = 2_621_440  # Django's FILE_UPLOAD_MAX_MEMORY_SIZE default (2.5 MB)
_FINITE_JOIN_LIMIT = 1 << 20  # a finite body up to this size goes out as one write

_threads: int | None = None
_pool: WorkerPool | None = None
_pool_pid = 0
_pool_lock = threading.Lock()


def set_default_threads(threads: int) -> None:
    """Size of the process-wide pool (``--threads``); takes effect when the pool is created."""
    global _threads
    if threads < 1:
        raise ValueError("threads must be at least 1")
    _threads = threads


class WorkerPool(Executor):
    """A bounded pool of daemon threads, started as work arrives.

    Daemon threads, unlike ``ThreadPoolExecutor``'s (joined at interpreter exit): a request
    stuck forever must not keep the process alive once the server has given up on it (the
    live-server thread, ``runserver``'s autoreloader child, a test run).
    """

    def __init__(self, max_workers: int, name: str = "switchboard-wsgi") -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.max_workers = max_workers
        self.name = name
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new work after shutdown")
            self._jobs.put((future, fn, args, kwargs))
            if not self._idle.acquire(blocking=False) and len(self._threads) < self.max_workers:
                thread = threading.Thread(
                    target=self._work, name=f"{self.name}_{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        return future

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            future, fn, args, kwargs = job
            del job
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:  # noqa: BLE001 - handed to the waiter
                    future.set_exception(exc)
                    del exc  # no cycle through the traceback
                else:
                    future.set_result(result)
                    del result
            del future, fn, args, kwargs
            self._idle.release()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        if cancel_futures:
            while True:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    job[0].cancel()
        for _ in threads:
            self._jobs.put(None)
        if wait:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join()


def default_executor(threads: int | None = None) -> WorkerPool:
    """The process-wide pool that runs WSGI applications (a fresh one after ``fork()``)."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool = WorkerPool(_threads or threads or DEFAULT_THREADS)
            _pool_pid = os.getpid()
        return _pool


def _thread_clock() -> int | None:
    """The CPU clock of the calling thread, readable from other threads (None where the
    platform has no such clock: a turn is then given up at the first look, after ``grace``)."""
    getcpuclockid = getattr(time, "pthread_getcpuclockid", None)
    if getcpuclockid is None:
        return None
    try:
        return getcpuclockid(threading.get_ident())
    except OSError:
        return None


class _Place:
    """A request's turn to compute (see ``_Turns``) and the CPU clock of the thread running it."""

    __slots__ = ("started", "clock", "cpu", "process_cpu", "wall", "holding", "done")

    def __init__(self) -> None:
        self.started = False  # its thread runs it (it may have been handed the turn before)
        self.clock: int | None = None
        self.cpu = 0.0
        self.process_cpu = 0.0
        self.wall = 0.0
        self.holding = False  # has the turn (changed under _Turns.lock)
        self.done = False  # gave it up: finished, or found waiting

    def start_clock(self) -> None:
        """Called in the pool thread once it has the turn."""
        clock = _thread_clock()
        if clock is not None:
            self.cpu = time.clock_gettime(clock)
            self.process_cpu = time.process_time()
            self.wall = time.monotonic()
            self.clock = clock  # the loop reads the others once this is set
        self.started = True

    def waiting(self) -> bool:
        """Is the thread waiting on something else than the GIL (the database, the network,
        a client)? Yes when, since the last look, it ran on a CPU for less than
        ``BUSY_SHARE`` of the time while the process as a whole left at least that share of
        a CPU unused (else the thread was only waiting for the GIL). Called from the loop;
        False before the thread has started, True when its clock is unknown or gone."""
        if not self.started:
            return False
        clock = self.clock
        if clock is None:
            return True
        now = time.monotonic()
        process_cpu = time.process_time()
        try:
            cpu = time.clock_gettime(clock)
        except OSError:
            return True
        window = (now - self.wall) * BUSY_SHARE
        idle = cpu - self.cpu < window and process_cpu - self.process_cpu < (
            (now - self.wall) - window
        )
        self.cpu, self.process_cpu, self.wall = cpu, process_cpu, now
        return idle


class _Turns:
    """Turns to compute, ``limit`` at a time, taken by pool threads first come first served.

    A thread takes a turn before running its request and gives it back when done; the event
    loop gives it back on the thread's behalf when it finds the thread waiting (see
    ``WSGIAdapter``'s ``concurrency``). The next thread is handed the turn directly (or by
    the loop, when given a loop), so back to back requests need no trip through the loop.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.lock = threading.Lock()
        self.holders = 0
        self.queue: deque[tuple[threading.Lock, _Place]] = deque()

    def take(self, place: _Place) -> None:
        """In a pool thread: wait for a turn."""
        with self.lock:
            if self.holders < self.limit and not self.queue:
                self.holders += 1
                place.holding = True
                return
            ticket = threading.Lock()
            ticket.acquire()
            self.queue.append((ticket, place))
        ticket.acquire()  # released by give(), which has counted us in

    def give(self, place: _Place, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """From any thread: ``place`` gives its turn up (once; later calls do nothing). With
        ``loop``, the next thread gets the turn from that loop's thread, once the loop has run
        what was ready: a turn for the loop between two requests."""
        with self.lock:
            place.done = True
            if not place.holding:
                return
            place.holding = False
            if not self.queue:
                self.holders -= 1
                return
            if loop is None:
                self._hand_on()
                return
        try:
            # Twice through the ready queue: the loop polls its sockets in between.
            loop.call_soon_threadsafe(loop.call_soon, self._pass_on)
        except RuntimeError:  # the loop is closed
            self._pass_on()

    def _pass_on(self) -> None:
        with self.lock:
            if self.queue:
                self._hand_on()
            else:
                self.holders -= 1

    def _hand_on(self) -> None:
        ticket, successor = self.queue.popleft()
        successor.holding = True
        ticket.release()

    def watch(
        self, loop: asyncio.AbstractEventLoop, place: _Place, every: float
    ) -> list[asyncio.TimerHandle]:
        """Look at ``place`` every ``every`` seconds from ``loop`` until it gives its turn up;
        returns a list holding the current timer (cancel ``[0]``)."""
        handle: list[asyncio.TimerHandle] = []

        def look() -> None:
            if place.done:
                return
            # Waiting for its turn, or still computing: another request would only take turns
            # with it for the GIL (and the locks Django takes per call). Waiting on I/O (or
            # unknown): let the next one compute.
            if place.holding and place.waiting():
                self.give(place)
            else:
                handle[0] = loop.call_later(every, look)

        handle.append(loop.call_later(every, look))
        return handle


def is_wsgi_application(app: Any) -> bool:
    """A plain callable that is not a coroutine function (nor has an async ``__call__``)."""
    if asyncio.iscoroutinefunction(app):
        return False
    call = getattr(app, "__call__", None)  # noqa: B004 - instances with an async __call__
    if call is not None and asyncio.iscoroutinefunction(call):
        return False
    return callable(app)


class FileWrapper:
    """``wsgi.file_wrapper``: iterates a file in blocks; the adapter may send it by path."""

    __slots__ = ("filelike", "block_size")

    def __init__(self, filelike: Any, block_size: int = 8192) -> None:
        self.filelike = filelike
        self.block_size = block_size

    def __iter__(self) -> Any:
        read = self.filelike.read
        while data := read(self.block_size):
            yield data

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()

    def sendable_path(self) -> str | None:
        """The path of the file when sending it whole by path gives exactly what reading would.

        A regular file at position 0 (an already-read part would be sent again otherwise),
        opened in binary mode, whose name still points at the same inode.
        """
        f = self.filelike
        name = getattr(f, "name", None)
        if not isinstance(name, str) or "b" not in getattr(f, "mode", "b"):
            return None
        try:
            if f.tell() != 0:
                return None
            st = os.fstat(f.fileno())
            on_disk = os.stat(name)
        except (OSError, AttributeError, ValueError, io.UnsupportedOperation):
            return None
        if (st.st_dev, st.st_ino) != (on_disk.st_dev, on_disk.st_ino):
            return None
        import stat

        return os.path.abspath(name) if stat.S_ISREG(st.st_mode) else None


def _header_value(value: bytes) -> str:
    return value.decode("latin-1")


def build_environ(scope: dict[str, Any], body: Any) -> dict[str, Any]:
    """The PEP 3333 environ for an ASGI ``http`` scope; ``body`` is the spooled input.

    Strings are "native strings" (bytes as latin-1). ``SCRIPT_NAME`` is the scope's
    ``root_path``, ``PATH_INFO`` the path below it. Repeated fields are joined with ``,``
    (RFC 9110 section 5.3), cookies with ``; `` (RFC 6265 section 5.4). Field names holding
    ``_`` are dropped: they would be indistinguishable from their ``-`` twins in the environ.
    """
    root = scope.get("root_path", "") or ""
    path = scope["path"]
    if root and path.startswith(root):
        path = path[len(root) :]
    server = scope.get("server") or ("unknown", 0)
    client = scope.get("client")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": root.encode("utf-8").decode("latin-1"),
        "PATH_INFO": path.encode("utf-8").decode("latin-1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1] if server[1] is not None else 0),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": body,
        "wsgi.input_terminated": True,  # reading to EOF is safe, even without a length
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.file_wrapper": FileWrapper,
    }
    if client:
        environ["REMOTE_ADDR"] = str(client[0])
        environ["REMOTE_PORT"] = str(client[1])
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1").upper()
        if "_" in name:
            continue
        if name == "CONTENT_LENGTH" or name == "CONTENT-LENGTH":
            key = "CONTENT_LENGTH"
        elif name == "CONTENT-TYPE":
            key = "CONTENT_TYPE"
        else:
            key = "HTTP_" + name.replace("-", "_")
        value = _header_value(raw_value)
        if key in environ:
            value = environ[key] + ("; " if key == "HTTP_COOKIE" else ",") + value
        environ[key] = value
    return environ


async def read_body(receive: Callable[[], Awaitable[dict]], max_memory: int) -> Any | None:
    """The whole request body as a rewound file object; ``None`` if the client left first."""
    message = await receive()
    if message["type"] != "http.request":
        return None
    data = message.get("body", b"")
    if not message.get("more_body", False) and len(data) <= max_memory:
        return io.BytesIO(data)
    spool: Any = io.BytesIO()
    size = 0
    while True:
        if data:
            size += len(data)
            if size > max_memory and isinstance(spool, io.BytesIO):
                disk = tempfile.TemporaryFile(mode="w+b")
                disk.write(spool.getbuffer())
                spool = disk
            spool.write(data)
        if not message.get("more_body", False):
            break
        message = await receive()
        if message["type"] != "http.request":
            spool.close()
            return None
        data = message.get("body", b"")
    spool.seek(0)
    return spool


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


def _run_in_pool(executor: Executor | None) -> SyncRunner:
    def run(fn: Callable[[], Any]) -> Awaitable[Any]:
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        return loop.run_in_executor(executor or default_executor(), context.run, fn)

    return run


class WSGIAdapter:
    """An ASGI application that serves the WSGI application ``app`` (see the module docs).

    ``run_sync`` runs a callable in a pool thread and returns an awaitable of its result; the
    default runs it in ``executor`` (or the process-wide pool) with the caller's contextvars.

    ``concurrency``: how many requests compute in the pool at once; the other threads wait for
    a turn (``_Turns``), in order. Why: Python runs one thread at a time (the GIL), so a second
    request computing beside the first gains nothing and costs a lot. The threads trade the
    GIL every switch interval, and a switch can catch one of them inside a lock Django takes
    for nearly every call (asgiref's ``Local``, behind translations and URL prefixes), so the
    other sleeps on it: a template view rendered on two threads at once used three times the
    CPU per request. The event loop (and every WebSocket on it) waits for the GIL behind them
    all as well. A finished request hands its turn straight to the next thread, with no trip
    through the loop, unless WebSockets are open: then the loop hands it on, after polling
    its sockets once, so they get a share of the GIL between two requests. Every ``grace``
    seconds the loop looks at the CPU clock of the thread whose turn it is: one that ran for
    less than ``BUSY_SHARE`` of the time, while the process left the GIL free, is waiting (on
    the database, the network, a slow client) and gives its turn up, so views that block
    still run side by side, up to the pool's size. ``0`` lets every request run at once (the
    pool's size is then the only bound).
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        executor: Executor | None = None,
        run_sync: SyncRunner | None = None,
        spool_max_memory: int = SPOOL_MAX_MEMORY,
        concurrency: int = DEFAULT_CONCURRENCY,
        grace: float = CONCURRENCY_GRACE,
    ) -> None:
        if concurrency < 0:
            raise ValueError("concurrency must be 0 (unbounded) or more")
        self.app = app
        self.run_sync = run_sync or _run_in_pool(executor)
        self.spool_max_memory = spool_max_memory
        self.concurrency = concurrency
        self.grace = grace
        self._turns = _Turns(concurrency) if concurrency else None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await _lifespan(receive, send)
            return
        if kind != "http":
            raise ValueError(f"A WSGI application can only serve HTTP, not {kind!r}")
        body = await read_body(receive, self.spool_max_memory)
        if body is None:
            return  # the client went away before its request was complete
        loop = asyncio.get_running_loop()
        pathsend = "http.response.pathsend" in (scope.get("extensions") or {})

        turns = self._turns
        if turns is None:
            outcome_future = self.run_sync(lambda: self._serve(scope, body, send, loop, pathsend))
            place = None
        else:
            place = _Place()

            def in_turn() -> Any:
                turns.take(place)
                try:
                    place.start_clock()
                    return self._serve(scope, body, send, loop, pathsend)
                finally:
                    # While WebSockets share the loop, the next request starts from the loop:
                    # handed on directly, requests back to back left the loop so little of
                    # the GIL that WebSocket echo fell to a twentieth (bench/django_http.py).
                    turns.give(place, loop if websockets_open() else None)

            outcome_future = self.run_sync(in_turn)
            watcher = turns.watch(loop, place, self.grace)
        try:
            outcome = await outcome_future
        finally:
            body.close()
            if place is not None and place.done:
                watcher[0].cancel()  # else it keeps looking until the thread lets go
        if isinstance(outcome, _Done):
            await send(
                {"type": "http.response.start", "status": outcome.status,
                 "headers": outcome.headers}
            )  # fmt: skip
            await send({"type": "http.response.body", "body": outcome.body})
        elif isinstance(outcome, _AsyncBody):
            await self._send_async(outcome, send)

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
                await self.run_sync(close)


def _finite(result: Any) -> list[bytes] | None:
    """The chunks of a body known to be finite (it has a ``len()``), else ``None``."""
    try:
        len(result)
    except TypeError:
        return None
    return list(result)


async def _lifespan(receive: Any, send: Any) -> None:
    # WSGI has no lifespan of its own: acknowledge both phases so the server carries on.
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
