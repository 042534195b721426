"""Live-server tests: the project's ASGI application on Switchboard's real server.

The server runs in a background thread with its own event loop, not in a subprocess: it sees
the test's settings (including ``override_settings`` and the test database name Django's test
runner sets) and the same database, so rows a test commits are visible to consumers and
views at once. That is also why the base class is a TransactionTestCase: data written inside
an uncommitted TestCase transaction would be invisible to the server's own connections.
"""

from __future__ import annotations

import asyncio
import enum
import threading
from typing import Any

from django.db import connections
from django.test import TransactionTestCase, modify_settings
from django.utils.functional import classproperty
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as websocket_client
from websockets.typing import Origin

from switchboard.routing import project_application
from switchboard.server import Config, Server
from switchboard.server.runtime.server import new_event_loop

__all__ = [
    "ChannelsLiveServerTestCase",
    "LiveServer",
    "SwitchboardLiveServerTestCase",
    "project_application",
]


class LiveServer:
    """Switchboard's server on a free port, running in a daemon thread until ``stop()``."""

    def __init__(self, application: Any, host: str = "127.0.0.1", **options: Any) -> None:
        # Short drains: a test that leaves a socket open should not stall teardown for long.
        options.setdefault("timeout_graceful_shutdown", 5.0)
        options.setdefault("application_close_timeout", 5.0)
        options.setdefault("access_log", False)
        self.config = Config(app=application, host=host, port=0, **options)
        self.host = host
        self.port: int | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._exit: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="switchboard-live-server")
        self._thread.daemon = True

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        if not self._started.wait(timeout):
            raise RuntimeError(f"The live server did not start within {timeout} seconds")
        if self._error is not None:
            self._thread.join()
            raise RuntimeError("The live server failed to start") from self._error

    def stop(self, timeout: float = 30.0) -> None:
        loop, exit_event = self._loop, self._exit
        if loop is not None and exit_event is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(exit_event.set)
            except RuntimeError:
                pass  # the loop closed in between: the thread is already on its way out
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError(f"The live server did not stop within {timeout} seconds")

    def _run(self) -> None:
        loop = new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # noqa: BLE001 - reported to start() in the test thread
            if not self._started.is_set():
                self._error = exc
            else:
                raise
        finally:
            self._started.set()
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                # Connections this thread opened (sync code run inline) must not outlive it.
                connections.close_all()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._exit = asyncio.Event()
        server = Server(self.config)
        await server.startup()
        try:
            self.port = server.sockets[0].getsockname()[1]
            self._started.set()
            await self._exit.wait()
        finally:
            await server.shutdown()


class _Origin(enum.Enum):
    LIVE_SERVER = "the live server's own origin"


class SwitchboardLiveServerTestCase(TransactionTestCase):
    """A TransactionTestCase with the project's ASGI application served for real.

    The server starts in ``setUpClass`` (after class-level ``override_settings`` apply, so
    that is where to pick ``ASGI_APPLICATION``) on a free port of ``host``, and stops once the
    class is done. Reach it with a browser, an HTTP client or a WebSocket client through
    ``live_server_url`` / ``live_server_ws_url``, or open a WebSocket with
    ``websocket_connect(path)``. ``host`` is appended to ``ALLOWED_HOSTS`` meanwhile, and static
    files are served under ``STATIC_URL`` unless ``serve_static`` is False. Each test's rows are
    committed (and flushed after it), so the server sees them.
    """

    host: str = "127.0.0.1"
    serve_static: bool = True

    _live_server: LiveServer | None = None

    @classproperty
    def live_server_url(cls) -> str:
        return f"http://{cls._live_server_netloc()}"

    @classproperty
    def live_server_ws_url(cls) -> str:
        return f"ws://{cls._live_server_netloc()}"

    def websocket_connect(
        self, path: str, *, origin: str | None | _Origin = _Origin.LIVE_SERVER, **options: Any
    ) -> ClientConnection:
        """A WebSocket client (``websockets.sync.client``) connected to ``path`` on the server.

        Its handshake carries ``Origin: <live_server_url>``, as a page the server served would,
        so an application behind ``AllowedHostsOriginValidator`` accepts it. Pass ``origin``
        for another one (a foreign site's page), ``origin=None`` for none. ``options`` go to
        ``websockets.sync.client.connect`` (``open_timeout``, ``additional_headers``, ...).
        Use it as a context manager, or ``close()`` it.
        """
        sent: str | None = self.live_server_url if isinstance(origin, _Origin) else origin
        options.setdefault("open_timeout", 10)
        url = f"{self.live_server_ws_url}{path}"
        return websocket_client(url, origin=None if sent is None else Origin(sent), **options)

    @classmethod
    def _live_server_netloc(cls) -> str:
        server = cls.__dict__.get("_live_server")
        if server is None or server.port is None:
            raise RuntimeError("The live server only runs between setUpClass and tearDownClass")
        host = f"[{cls.host}]" if ":" in cls.host else cls.host
        return f"{host}:{server.port}"

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        # Class cleanups run even when setUpClass fails part way, in reverse order.
        allowed = modify_settings(ALLOWED_HOSTS={"append": cls.host})
        allowed.enable()
        cls.addClassCleanup(allowed.disable)
        server = LiveServer(project_application(cls.serve_static), cls.host)
        server.start()
        cls._live_server = server
        cls.addClassCleanup(cls._stop_live_server)

    @classmethod
    def _stop_live_server(cls) -> None:
        server = cls.__dict__.get("_live_server")
        cls._live_server = None
        if server is not None:
            server.stop()


# Channels' name, for projects moving over with ``from channels.testing import ...`` rewritten.
ChannelsLiveServerTestCase = SwitchboardLiveServerTestCase
