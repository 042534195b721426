"""The serving loop of one process: listen, run lifespan, shut down gracefully."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import ssl
import threading
import time
from collections.abc import Awaitable
from typing import Any

from switchboard.server.asgi.lifespan import Lifespan
from switchboard.server.connections.http11 import HttpProtocol
from switchboard.server.runtime import health
from switchboard.server.runtime.config import FORCE_EXIT_MARGIN, Config
from switchboard.server.runtime.listen import (
    ListenError,
    bind_metrics_sockets,
    bind_socket,
    listening_address,
)
from switchboard.server.runtime.logging_setup import configure_logging
from switchboard.server.runtime.metrics_hook import metrics_hook
from switchboard.server.runtime.serving import add_serving, remove_serving
from switchboard.server.runtime.shutdown_hooks import run_shutdown_hooks
from switchboard.server.runtime.startup import run_startup_checks
from switchboard.server.runtime.state import ServerState
from switchboard.server.runtime.supervisor import run_supervised
from switchboard.server.runtime.tls import TLSServer, create_ssl_context, reload_certificates

__all__ = [
    "FORCE_EXIT_MARGIN",
    "ListenError",
    "Server",
    "bind_metrics_sockets",
    "bind_socket",
    "defer_stop_signals",
    "listening_address",
    "new_event_loop",
    "run",
    "serve_forever",
]

logger = logging.getLogger("switchboard.server")

# How long cancelled application tasks get to unwind before they are abandoned.
CANCEL_GRACE = 0.5
# The watchdog fires this long after the budget, leaving a clean exit time to happen first.
WATCHDOG_SLACK = 0.5


class Server:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.state = ServerState(config.server_header, config.date_header)
        self.should_exit = False
        self.servers: list[asyncio.Server | TLSServer] = []
        self.lifespan: Lifespan | None = None
        self._exit_event: asyncio.Event | None = None
        self._ticker: asyncio.TimerHandle | None = None
        self._exit_requested_at: float | None = None  # time.monotonic()
        self._watchdog: ExitWatchdog | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.ssl_context: ssl.SSLContext | None = None

    @property
    def sockets(self) -> list[socket.socket]:
        return [s for server in self.servers for s in server.sockets]

    async def startup(self, sock: socket.socket | None = None) -> None:
        config = self.config
        config.load()
        if config.app_wrapper is not None:
            config.app = config.app_wrapper(config.app)
        # The health paths are answered in front of the application (and its lifespan).
        config.app = health.wrap(config.app, config)
        self.ssl_context = create_ssl_context(config)
        loop = asyncio.get_running_loop()
        self._exit_event = asyncio.Event()
        self.lifespan = Lifespan(config.app, config.lifespan)
        await self.lifespan.startup()
        app_state = self.lifespan.state

        def factory() -> HttpProtocol:
            return HttpProtocol(config, self.state, app_state, loop)

        sock = sock or bind_socket(config)
        tls = self.ssl_context
        server: asyncio.Server | TLSServer
        if tls is not None:  # handshakes timed and counted (--ssl-handshake-timeout)
            server = TLSServer(
                loop,
                factory,
                sock,
                tls,
                config.ssl_handshake_timeout,
                self.state.connections,
                config.limit_concurrency,
            )
        elif sock.family == socket.AF_UNIX:
            server = await loop.create_unix_server(factory, sock=sock, backlog=config.backlog)
        else:
            server = await loop.create_server(factory, sock=sock, backlog=config.backlog)
        self.servers.append(server)
        add_serving(self.state)
        self._tick()
        scheme = "https" if tls else "http"
        where = listening_address(sock, config.fd, scheme)
        logger.info("Listening on %s (Ctrl-C to quit)", where)

    def _tick(self) -> None:
        self.state.refresh_headers()
        self._ticker = asyncio.get_running_loop().call_later(1.0, self._tick)

    def request_exit(self) -> None:
        if self._exit_requested_at is None:
            self._exit_requested_at = time.monotonic()
        self.should_exit = True
        if self._exit_event is not None:
            self._exit_event.set()

    def _on_signal(self, signum: int, _frame: object) -> None:
        # A plain signal handler, not loop.add_signal_handler: it runs in the main thread
        # between bytecodes even while an application keeps the event loop from running, so
        # the watchdog is armed whatever the applications do.
        if self._exit_requested_at is None:
            self._exit_requested_at = time.monotonic()
            if self._watchdog is not None:
                budget = self._shutdown_budget() + WATCHDOG_SLACK
                self._watchdog.arm(self._exit_requested_at + budget)
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self.request_exit)

    def _on_sighup(self, _signum: int, _frame: object) -> None:
        # Certificates renewed on disk: new connections get them, open ones keep theirs.
        if self.ssl_context is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(reload_certificates, self.ssl_context, self.config)

    def _shutdown_budget(self) -> float:
        return self.config.timeout_graceful_shutdown + FORCE_EXIT_MARGIN

    async def shutdown(self) -> None:
        """Stop accepting and close connections (WebSockets with 1001); applications get until
        ``timeout_graceful_shutdown`` to return, then they are cancelled. Cancelled tasks and
        the lifespan shutdown share FORCE_EXIT_MARGIN more; whatever still runs is abandoned."""
        started = self._exit_requested_at or time.monotonic()
        deadline = started + self.config.timeout_graceful_shutdown
        hard_deadline = started + self._shutdown_budget()
        state = self.state
        state.shutting_down = True
        for server in self.servers:
            server.close()
        run_shutdown_hooks()
        for conn in list(state.connections):
            conn.shutdown()
        # Connections close as their responses end or their closing handshakes complete; an
        # application may still run after its connection is gone, and gets the same time.
        while (state.connections or _running(state.tasks)) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for conn in list(state.connections):
            transport = getattr(conn, "transport", None)
            if transport is not None:
                transport.abort()
        tasks = _running(state.tasks)
        if tasks:
            logger.warning(
                "Cancelling %d application task(s) still running after the graceful "
                "shutdown timeout (%ss)",
                len(tasks),
                self.config.timeout_graceful_shutdown,
            )
            for task in tasks:
                task.cancel()
            grace = min(CANCEL_GRACE, hard_deadline - time.monotonic())
            _, pending = await asyncio.wait(tasks, timeout=max(grace, 0.01))
            if pending:
                logger.error(
                    "%d application task(s) ignored cancellation; shutting down without them",
                    len(pending),
                )
        if self._ticker is not None:
            self._ticker.cancel()
        lifespan = self.lifespan
        if lifespan is not None and not await _within(lifespan.shutdown(), hard_deadline):
            logger.error("Lifespan shutdown did not finish in time; shutting down without it")
        for server in self.servers:
            await _within(server.wait_closed(), hard_deadline)
        remove_serving(state)

    async def serve(self, sock: socket.socket | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        previous: dict[signal.Signals, Any] = {}
        owns_process = threading.current_thread() is threading.main_thread()
        if owns_process:
            # We own the process: SIGINT/SIGTERM stop it, within the shutdown budget. Before
            # startup, so that a stop sent as soon as the port accepts (a process manager, a
            # test) is a graceful one, not the default action's instant death.
            self._watchdog = ExitWatchdog()
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, self._on_signal)
            if _stops_before_serving:  # a graceful stop, however early it was asked for
                self._on_signal(_stops_before_serving.pop(), None)
                _stops_before_serving.clear()
        # else the caller stops us with request_exit() and owns the process's exit
        try:
            await self.startup(sock)
            if owns_process and self.ssl_context is not None and hasattr(signal, "SIGHUP"):
                previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, self._on_sighup)
            assert self._exit_event is not None
            if self.should_exit:  # asked during startup
                self._exit_event.set()
            await self._exit_event.wait()
            logger.info("Shutting down")
            if count := len(self.state.connections):
                logger.info(
                    "Waiting for %d connection%s to close (up to %gs)",
                    count,
                    "" if count == 1 else "s",
                    self.config.timeout_graceful_shutdown,
                )
            await self.shutdown()
        finally:
            for sig, handler in previous.items():  # the loop is about to close
                signal.signal(sig, handler)


# SIGINT/SIGTERM that came after the socket was bound (the kernel accepts connections from
# then on, so whoever waits for the port may send them) and before serve() took over.
_stops_before_serving: list[int] = []


def _remember_stop(signum: int, _frame: object) -> None:
    _stops_before_serving.append(signum)


def defer_stop_signals() -> None:
    """From now until :meth:`Server.serve` installs its own handlers, remember SIGINT and
    SIGTERM, and honour them then as a graceful stop (main thread only). Without this, a stop
    landing in that window raised KeyboardInterrupt wherever the interpreter happened to be,
    and inside a weakref or GC callback it was swallowed: the server then served on."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _remember_stop)


def _running(tasks: set[asyncio.Task]) -> list[asyncio.Task]:
    return [t for t in tasks if not t.done()]


async def _within(aw: Awaitable[Any], deadline: float) -> bool:
    """Await ``aw`` until ``deadline`` (time.monotonic()); False if it had to be cancelled."""
    task = asyncio.ensure_future(aw)
    done, _ = await asyncio.wait([task], timeout=max(deadline - time.monotonic(), 0.01))
    if done:
        task.result()
        return True
    task.cancel()
    return False


class ExitWatchdog:
    """Ends the process once the shutdown budget is spent, from a thread of its own.

    Once armed it needs nothing from the event loop, so an application blocking the loop, or
    holding a thread the interpreter would wait for at exit, cannot keep the process alive.
    """

    def __init__(self) -> None:
        self._deadline = 0.0
        self._armed = threading.Event()
        thread = threading.Thread(target=self._run, name="switchboard-exit-watchdog", daemon=True)
        thread.start()

    def arm(self, deadline: float) -> None:
        """Exit the process at ``deadline`` (time.monotonic()) unless it has ended before."""
        self._deadline = deadline
        self._armed.set()

    def _run(self) -> None:
        self._armed.wait()
        delay = self._deadline - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        # os.write, not logging: a blocked main thread may hold the logging handler's lock.
        os.write(2, b"switchboard: graceful shutdown overran its budget; exiting now\n")
        os._exit(1)


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def serve_forever(
    config: Config,
    sock: socket.socket | None = None,
    worker: int | None = None,
    metrics_sock: socket.socket | None = None,
) -> None:
    """Serve in this process; ``worker``: its slot under --workers (a metrics label),
    ``metrics_sock``: the bound socket of its --metrics-port endpoint."""
    logger.info("Started server process [%d]", os.getpid())
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    server = Server(config)
    server.state.worker = worker
    endpoint = None
    if metrics_sock is not None:
        endpoint = metrics_hook(config).start(metrics_sock, server.state)
    try:
        loop.run_until_complete(server.serve(sock))
    finally:
        if endpoint is not None:
            endpoint.close()
        loop.close()
    logger.info("Finished server process [%d]", os.getpid())


def run(app: Any, **options: Any) -> None:
    """Serve ``app`` (an ASGI callable or ``"module:attr"``) until SIGTERM/SIGINT.

    Raises ``AppImportError``/``AppShapeError`` for an unusable application,
    ``StartupCheckError`` when a startup check refuses it (Django's system checks),
    :class:`ListenError` when the address (or the metrics port) cannot be listened on, and
    ``MetricsSetupError`` for a ``metrics_port`` that cannot be served (no ``metrics`` hook;
    ``switchboard.metrics.MetricsUnavailableError``: no ``prometheus_client``), before serving
    anything.
    """
    config = Config(app=app, **options)
    configure_logging(config.log_level, log_format=config.log_format)
    if config.metrics_port is not None:
        metrics_hook(config).require()
    if config.workers > 1:
        run_supervised(config, serve_forever)
    else:
        # Import and vet the app before binding, as the supervisor does, and bind before
        # lifespan startup so a busy port does not run (and strand) the app's startup.
        config.load()
        run_startup_checks(config)  # e.g. Django's system checks (switchboard/checks.py)
        create_ssl_context(config)  # unusable certificate files: fail before binding
        main_thread = threading.current_thread() is threading.main_thread()
        previous = {}
        if main_thread:
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, _remember_stop)
        try:
            sock = bind_socket(config)
            try:
                metrics = bind_metrics_sockets(config)
            except ListenError:
                sock.close()
                raise
            serve_forever(config, sock, metrics_sock=metrics[0] if metrics else None)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
