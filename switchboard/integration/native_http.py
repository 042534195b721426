"""Switchboard's native Django HTTP path: Django's WSGI handler behind the server's WSGI adapter.

Why: Django's generic ASGI handler pays for a task per request, several thread hops (signals,
sync middleware, the view, ``close()``) and a disconnect listener. The WSGI handler runs the
whole middleware chain, view and signals in one thread call; ``switchboard.server.wsgi`` gives
it that one hop, in a bounded pool, while the event loop keeps doing the I/O (and WebSockets).

Who gets it: a stock project, with no change to ``asgi.py`` beyond ``channels`` ->
``switchboard``. ``ProtocolTypeRouter({"http": get_asgi_application(), ...})`` swaps an
``"http"`` entry that is exactly Django's ``ASGIHandler`` (not a subclass, not wrapped), and
``switchboard serve`` swaps a bare one (the server finds :func:`native_http` by the handler's
class name and imports this module lazily, so ``switchboard/server/`` never imports Django).

``manage.py runserver`` and ``SwitchboardLiveServerTestCase`` swap a bare handler too, before
wrapping it for static files (``switchboard.routing.project_application``).

Opting out: ``SWITCHBOARD_NATIVE_HTTP = False`` in settings, ``switchboard serve --interface
asgi``, or wrap the handler in anything (e.g. a middleware) so it is no longer exactly
Django's.

What runs where (and so: thread-safety and database connections):

- Event loop: reading and spooling the request body (memory up to
  ``FILE_UPLOAD_MAX_MEMORY_SIZE``, then a temporary file, as Django's ASGI handler does),
  writing the response, async streaming bodies, and ``async def`` views: Django's WSGI
  handler runs them through ``async_to_sync``, which (told so by ``_enter_asgiref`` in each
  pool thread) schedules them on the server's own loop, next to the WebSocket consumers;
  their ``sync_to_async`` calls come back to the same pool thread.
- One pool thread per request: ``request_started`` (so ``close_old_connections``), the
  middleware chain (Django loads it for sync use: async-only middleware is adapted with
  ``async_to_sync``, which again runs on the server's loop), sync views, building a non-streaming
  body, and ``response.close()`` (so ``request_finished`` and ``close_old_connections``). For a
  sync streaming response the thread also pulls the chunks, one at a time, with back-pressure.
  Code in views must be thread-safe exactly as under gunicorn's threaded workers.
- Database connections are per thread, as everywhere in Django: at most one per pool thread
  and alias, reused across requests up to ``CONN_MAX_AGE`` (0: closed at the end of every
  request by ``request_finished``). For an async streaming body, ``close()`` runs in a pool
  thread after the stream: the view's own thread tidies its connection at its next
  ``request_started``.

Pool size: ``switchboard serve --threads N``, else ``SWITCHBOARD_HTTP_THREADS``, else
``switchboard.server.wsgi.thread_pool.DEFAULT_THREADS`` (4: on a 2-core machine CPU-bound views gain
nothing from more threads, while a few cover views that wait on the database or the network).

Requests computing at once: ``SWITCHBOARD_HTTP_CONCURRENCY`` (default 1, ``0`` for no bound
but the pool's size). Requests take turns, and a finished request's thread runs the next one:
a request whose thread waits on I/O for the 2 ms between two looks at its CPU clock gives its
turn up, so views that block still run side by side (``switchboard.server.wsgi.compute_turns``
says why; ``bench/django_http.py`` measures it).

Differences from Django's ASGI handler: ``request_started`` is sent with ``environ=`` (as
under WSGI) rather than ``scope=``; a sync view keeps running if the client disconnects (as
under WSGI and the ASGI handler alike); a streaming response notices the disconnect at its
next chunk; request header names holding ``_`` are dropped (as gunicorn does).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

from asgiref.sync import SyncToAsync
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.wsgi import WSGIHandler, WSGIRequest
from django.http.response import HttpResponseBase

# Registers the system checks, and with them serve's startup check, even if the app is not
# installed: `switchboard serve` imports this module for a bare Django handler.
from switchboard.integration import checks  # noqa: F401
from switchboard.server.wsgi.adapter import WSGIAdapter
from switchboard.server.wsgi.compute_turns import DEFAULT_CONCURRENCY

__all__ = ["DjangoHTTPApplication", "NativeWSGIHandler", "native_http"]


class _TerminatedInputRequest(WSGIRequest):
    """Reads a request body of unknown length (chunked upload) to its end.

    A plain WSGI request without ``CONTENT_LENGTH`` reads nothing; the adapter spools the whole
    body first and says so with ``wsgi.input_terminated``, so the body is read as Django's ASGI
    handler would read it.
    """

    def __init__(self, environ: dict[str, Any]) -> None:
        super().__init__(environ)
        if environ.get("wsgi.input_terminated") and not environ.get("CONTENT_LENGTH"):
            self._stream = environ["wsgi.input"]


class _Buffered(list):
    """A non-streaming response's content: a finite body (``len()``) whose ``close()`` is the
    response's."""

    __slots__ = ("close",)

    def __init__(self, response: HttpResponseBase) -> None:
        super().__init__(response)
        self.close = response.close


class _AsyncStream:
    """An async ``StreamingHttpResponse``: iterated on the event loop, closed in a pool thread."""

    __slots__ = ("response",)

    def __init__(self, response: Any) -> None:
        self.response = response

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._parts()

    async def _parts(self) -> AsyncIterator[bytes]:
        content = self.response.streaming_content
        try:
            async for part in content:
                yield part
        finally:
            # Ending early (the client left): close the view's own async generator now, not
            # whenever it is collected. Django's response.close() only closes sync iterators.
            await content.aclose()
            source = getattr(self.response, "_iterator", None)
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()

    def close(self) -> None:
        self.response.close()


class NativeWSGIHandler(WSGIHandler):
    """Django's WSGI handler, returning bodies the adapter can serve without extra hops."""

    request_class = _TerminatedInputRequest

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        response = super().__call__(environ, start_response)
        if not isinstance(response, HttpResponseBase):
            return response  # FileResponse, already wrapped in wsgi.file_wrapper
        if not response.streaming:
            return _Buffered(response)
        if response.is_async:
            return _AsyncStream(response)
        return response


def _enter_asgiref(loop: asyncio.AbstractEventLoop) -> None:
    """In the pool thread: tell asgiref which loop ``async_to_sync`` runs coroutines on.

    asgiref's ``sync_to_async`` sets ``SyncToAsync.threadlocal`` in the threads it runs, and
    ``async_to_sync`` there runs its coroutine on that loop: set the same here, so async
    views and middleware run on the server's loop. Going through ``SyncToAsync`` itself cost
    the loop about 15% of a plain view (its context juggling and ``concurrent.futures`` round
    trip); ``tests/test_django_native_http.py`` checks that async views still land on our loop.
    """
    local = SyncToAsync.threadlocal
    local.main_event_loop = loop
    local.main_event_loop_pid = _pid
    local.task_context = None  # no caller task to hand cancellation to


def _note_pid() -> None:
    global _pid
    _pid = os.getpid()


# The process id asgiref compares with, kept up to date across fork() rather than asked of
# the kernel in every request (os.getpid() is a system call).
_pid = os.getpid()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_note_pid)


class DjangoHTTPApplication(WSGIAdapter):
    """The native path as an ASGI application (HTTP only; lifespan acknowledged)."""

    def __init__(
        self,
        handler: WSGIHandler | None = None,
        threads: int | None = None,
        concurrency: int | None = None,
    ) -> None:
        if threads is None:
            threads = getattr(settings, "SWITCHBOARD_HTTP_THREADS", None)
        if concurrency is None:
            concurrency = getattr(settings, "SWITCHBOARD_HTTP_CONCURRENCY", DEFAULT_CONCURRENCY)
        super().__init__(
            handler or NativeWSGIHandler(),
            threads=threads,
            thread_setup=_enter_asgiref,
            spool_max_memory=settings.FILE_UPLOAD_MAX_MEMORY_SIZE,
            concurrency=concurrency,
        )


def native_http(app: Any) -> Any:
    """``app``, or the native path when ``app`` is exactly Django's ``ASGIHandler`` and
    ``SWITCHBOARD_NATIVE_HTTP`` is not ``False``."""
    if type(app) is not ASGIHandler or not getattr(settings, "SWITCHBOARD_NATIVE_HTTP", True):
        return app
    return DjangoHTTPApplication()
