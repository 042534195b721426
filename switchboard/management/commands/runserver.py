"""``manage.py runserver``: Django's development server command, served by Switchboard.

HTTP and WebSocket both go through Switchboard's own server, with Django's autoreloader and
(in DEBUG, when ``django.contrib.staticfiles`` is installed) static files under STATIC_URL.
For this command to replace staticfiles' own ``runserver``, ``"switchboard"`` must come
before ``"django.contrib.staticfiles"`` in INSTALLED_APPS: Django picks the first app that
provides a command of that name. ``--noasgi`` falls back to Django's WSGI server.
"""

from __future__ import annotations

import asyncio
import atexit
import errno
import os
import sys
import threading
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.management.base import CommandParser, SystemCheckError
from django.db import connections
from django.utils import autoreload

from switchboard.server import Config, Server
from switchboard.server.runtime.logging_setup import configure_logging
from switchboard.server.runtime.server import bind_socket, defer_stop_signals, new_event_loop

if apps.is_installed("django.contrib.staticfiles"):
    from django.contrib.staticfiles.management.commands.runserver import (
        Command as DjangoRunserver,
    )

    STATICFILES_INSTALLED = True
else:
    from django.core.management.commands.runserver import Command as DjangoRunserver

    STATICFILES_INSTALLED = False

_BIND_ERRORS = {
    errno.EACCES: "You don't have permission to bind that port.",
    errno.EADDRINUSE: "That port is already in use.",
    errno.EADDRNOTAVAIL: "That IP address is not available on this machine.",
}


class Command(DjangoRunserver):
    help = (
        "Starts Switchboard's development server: HTTP and WebSocket for ASGI_APPLICATION "
        "(or Django's ASGI handler), with autoreload and, in DEBUG, static files."
    )
    protocol = "http"

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--noasgi",
            action="store_false",
            dest="use_asgi",
            help="Run Django's own WSGI development server instead of Switchboard's (no "
            "WebSocket).",
        )
        parser.add_argument(
            "--ws-max-size",
            type=int,
            default=Config.ws_max_size,
            help="Largest incoming WebSocket message, in bytes (default: %(default)s).",
        )
        parser.add_argument(
            "--noaccesslog",
            action="store_false",
            dest="access_log",
            help="Do not log each request and WebSocket handshake.",
        )

    def get_asgi_handler(self, **options: Any) -> Any:
        """The project's ASGI application, wrapped for static files when appropriate."""
        from switchboard.routing import project_application

        return project_application(serve_static=self._serves_static(options))

    @staticmethod
    def _serves_static(options: dict[str, Any]) -> bool:
        if not STATICFILES_INSTALLED or not settings.STATIC_URL:
            return False
        if not options.get("use_static_handler", True):
            return False
        return bool(settings.DEBUG or options.get("insecure_serving", False))

    def inner_run(self, *args: Any, **options: Any) -> None:
        self._serving_asgi = options.get("use_asgi", True)
        if not self._serving_asgi:
            super().inner_run(*args, **options)
            return
        # An import error caught by the reloader's parent must surface in this child.
        autoreload.raise_last_exception()
        if not options["skip_checks"]:
            self.stdout.write("Performing system checks...\n\n")
            try:
                self.check(display_num_errors=True)
            except SystemCheckError as exc:
                if threading.current_thread() is threading.main_thread():
                    raise  # --noreload: Django prints the message and exits with status 1
                # Under the autoreloader: the message without a thread traceback, and the
                # files of a failed ASGI_APPLICATION import watched, so that the fix restarts
                # the server (a module that failed to import is not among those it watches).
                self.stderr.write(str(exc))
                from switchboard.integration.checks import failed_import_files

                _watch_until_fixed(failed_import_files)
                return
        self.check_migrations()
        # The checks may have opened connections in this thread; requests use their own.
        for connection in connections.all(initialized_only=True):
            connection.close()

        application = self.get_asgi_handler(**options)
        self._protocols = _protocols(application)
        config = Config(
            app=application,
            host=self._bind_host(),
            port=int(self.port),
            access_log=options.get("access_log", True),
            ws_max_size=options["ws_max_size"],
            # A development server should stop promptly on Ctrl-C, even with sockets open.
            timeout_graceful_shutdown=3.0,
            application_close_timeout=3.0,
        )
        _configure_logging()
        try:
            sock = bind_socket(config)
        except OSError as exc:
            reason = _BIND_ERRORS.get(exc.errno, exc) if exc.errno is not None else exc
            self.stderr.write(f"Error: {reason}")
            # sys.exit would only end this thread when the autoreloader runs us in one.
            os._exit(1)
        if threading.current_thread() is threading.main_thread():
            # A Ctrl-C from here on (the banner invites one) stops the server gracefully.
            defer_stop_signals()
        self.on_bind(sock.getsockname()[1])

        loop = new_event_loop()
        asyncio.set_event_loop(loop)
        server = Server(config)
        stop_at_exit = None
        if threading.current_thread() is not threading.main_thread():
            # Under the autoreloader we run in a daemon thread: Ctrl-C, SIGTERM or a reload
            # end the main thread, and the process would exit with the sockets cut (1006).
            stop_at_exit = _graceful_stop_at_exit(server, loop, threading.current_thread())
        try:
            # In the main thread (--noreload) the server turns SIGINT/SIGTERM into a graceful
            # stop itself.
            loop.run_until_complete(server.serve(sock))
        except KeyboardInterrupt:
            pass
        finally:
            if stop_at_exit is not None:
                atexit.unregister(stop_at_exit)
            loop.close()
        shutdown_message = options.get("shutdown_message", "")
        if shutdown_message:
            self.stdout.write(shutdown_message)
        sys.exit(0)

    def _bind_host(self) -> str:
        return "0.0.0.0" if self.addr == "0" else self.addr

    def on_bind(self, server_port: int) -> None:
        if not getattr(self, "_serving_asgi", True):
            super().on_bind(server_port)
            return
        host = f"[{self.addr}]" if self._raw_ipv6 else self._bind_host()
        quit_key = "CTRL-BREAK" if sys.platform == "win32" else "CONTROL-C"
        started = datetime.now().strftime("%B %d, %Y - %X")
        self.stdout.write(
            f"{started}\n"
            f"Django version {self.get_version()}, using settings {settings.SETTINGS_MODULE!r}\n"
            f"Starting Switchboard ASGI development server ({self._protocols}) at "
            f"{self.protocol}://{host}:{server_port}/\n"
            f"Quit the server with {quit_key}."
        )
        if os.environ.get("DJANGO_RUNSERVER_HIDE_WARNING") != "true":
            self.stdout.write(
                self.style.WARNING(
                    "WARNING: a development server (autoreload, static files from the "
                    "finders). In production run `python -m switchboard serve` instead."
                )
            )
        self.stdout.flush()


def _graceful_stop_at_exit(
    server: Server, loop: asyncio.AbstractEventLoop, thread: threading.Thread
) -> Any:
    """Register an exit hook that stops ``server`` gracefully: WebSockets get their 1001.

    ``atexit`` hooks run while daemon threads are still alive. The reloader's parent kills
    this process 0.25 s after its own Ctrl-C, so the close frames must go out at once; the
    rest of the graceful stop gets what time is left, bounded by the shutdown budget.
    """

    def stop() -> None:
        if loop.is_closed() or not thread.is_alive():
            return
        try:
            loop.call_soon_threadsafe(server.request_exit)
        except RuntimeError:  # the loop closed meanwhile
            return
        thread.join(server.config.timeout_graceful_shutdown + 1.0)

    atexit.register(stop)
    return stop


_reloader: Any = None  # this process's autoreloader, once it has started
_files_to_watch: set[str] = set()
_watch_lock = threading.Lock()


def _watch_until_fixed(files: Iterable[str]) -> None:
    """Have the autoreloader watch ``files`` too, whether it has started yet or not."""
    with _watch_lock:
        _files_to_watch.update(files)
        if _reloader is not None:
            # A new set rather than add(): the reloader's thread may be iterating the old one.
            _reloader.extra_files = _reloader.extra_files | {Path(f) for f in _files_to_watch}


def _remember_reloader(sender: Any, **kwargs: Any) -> None:
    global _reloader
    with _watch_lock:
        _reloader = sender
    _watch_until_fixed(())


# Sent by the reloader in the process that serves, as Django's template autoreloader uses it.
autoreload.autoreload_started.connect(
    _remember_reloader, dispatch_uid="switchboard.runserver.remember_reloader"
)


def _protocols(application: Any) -> str:
    """What the banner may promise: WebSocket only when the application routes it."""
    from switchboard.classic.embedded import EmbeddedWorkers
    from switchboard.routing import ProtocolTypeRouter

    inner = getattr(application, "application", application)  # inside the static handler
    embedded = application if isinstance(application, EmbeddedWorkers) else inner
    if isinstance(embedded, EmbeddedWorkers):
        if embedded.application is embedded.interface:
            return "HTTP and WebSocket through the Channels 1 routing, its workers in this process"
        inner = embedded.application  # ASGI_APPLICATION, the routing's workers beside it
    if not getattr(settings, "ASGI_APPLICATION", None):
        # Django's own handler (switchboard.W002): a WebSocket handshake would get 500.
        return "HTTP only: set ASGI_APPLICATION for WebSocket"
    if isinstance(inner, ProtocolTypeRouter) and "websocket" not in inner.application_mapping:
        return 'HTTP only: ASGI_APPLICATION routes no "websocket"'
    return "HTTP and WebSocket"


def _configure_logging() -> None:
    """Show the server's log unless the project's LOGGING already routes it.

    The same rule as ``switchboard serve`` (only the ``switchboard`` tree, only when no handler
    receives it), in the timestamp style of Django's own development server.
    """
    configure_logging(level=None, fmt="[%(asctime)s] %(message)s", datefmt="%d/%b/%Y %H:%M:%S")
