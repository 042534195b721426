"""The serving loop of one process: listen, run lifespan, shut down gracefully."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from typing import Any

from switchboard.server.config import Config
from switchboard.server.http import HttpProtocol
from switchboard.server.lifespan import Lifespan
from switchboard.server.logging_setup import configure_logging
from switchboard.server.state import ServerState

logger = logging.getLogger("switchboard.server")


class ListenError(OSError):
    """The listening socket could not be set up (port in use, no permission, bad fd...)."""

    def __str__(self) -> str:
        return str(self.args[-1]) if self.args else super().__str__()


def bind_socket(config: Config) -> socket.socket:
    """The listening socket the config names (shared by worker processes when forking).

    Raises :class:`ListenError` (an ``OSError`` with the original ``errno``) with a message
    that names the address.
    """
    sock: socket.socket | None = None
    try:
        if config.fd is not None:
            sock = socket.socket(fileno=config.fd)
        elif config.uds:
            if os.path.exists(config.uds):
                os.unlink(config.uds)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(config.uds)
            os.chmod(config.uds, 0o666)
        else:
            family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((config.host, config.port))
        sock.listen(config.backlog)
    except OSError as exc:
        if sock is not None and config.fd is None:
            sock.close()
        reason = exc.strerror or str(exc)
        where = _configured_address(config)
        raise ListenError(exc.errno, f"Cannot listen on {where}: {reason}") from exc
    sock.setblocking(False)
    return sock


def _configured_address(config: Config) -> str:
    if config.fd is not None:
        return f"fd {config.fd}"
    if config.uds:
        return f"unix:{config.uds}"
    host = f"[{config.host}]" if ":" in config.host else config.host
    return f"{host}:{config.port}"


def listening_address(sock: socket.socket, fd: int | None = None) -> str:
    """What to tell an operator: ``http://127.0.0.1:8000``, ``unix:/path``, ``fd 3 (...)``."""
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        path = name.decode(errors="replace") if isinstance(name, bytes) else name
        where = f"unix:{path}"
    else:
        host, port = name[:2]
        where = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    return where if fd is None else f"fd {fd} ({where})"


class Server:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.state = ServerState(config.server_header, config.date_header)
        self.should_exit = False
        self.servers: list[asyncio.AbstractServer] = []
        self.lifespan: Lifespan | None = None
        self._exit_event: asyncio.Event | None = None
        self._ticker: asyncio.TimerHandle | None = None

    @property
    def sockets(self) -> list[socket.socket]:
        return [s for server in self.servers for s in server.sockets]

    async def startup(self, sock: socket.socket | None = None) -> None:
        config = self.config
        config.load()
        loop = asyncio.get_running_loop()
        self._exit_event = asyncio.Event()
        self.lifespan = Lifespan(config.app, config.lifespan)
        await self.lifespan.startup()
        app_state = self.lifespan.state

        def factory() -> HttpProtocol:
            return HttpProtocol(config, self.state, app_state, loop)

        sock = sock or bind_socket(config)
        if sock.family == socket.AF_UNIX:
            server = await loop.create_unix_server(factory, sock=sock, backlog=config.backlog)
        else:
            server = await loop.create_server(factory, sock=sock, backlog=config.backlog)
        self.servers.append(server)
        self._tick()
        logger.info("Listening on %s (Ctrl-C to quit)", listening_address(sock, config.fd))

    def _tick(self) -> None:
        self.state.refresh_headers()
        self._ticker = asyncio.get_running_loop().call_later(1.0, self._tick)

    def request_exit(self) -> None:
        self.should_exit = True
        if self._exit_event is not None:
            self._exit_event.set()

    async def shutdown(self) -> None:
        """Stop accepting, let connections finish (up to the grace period), then lifespan."""
        self.state.shutting_down = True
        for server in self.servers:
            server.close()
        for conn in list(self.state.connections):
            conn.shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.timeout_graceful_shutdown
        while self.state.connections and loop.time() < deadline:
            await asyncio.sleep(0.02)
        for conn in list(self.state.connections):
            transport = getattr(conn, "transport", None)
            if transport is not None:
                transport.abort()
        # Apps get application_close_timeout to notice their disconnect and return.
        tasks = [t for t in self.state.tasks if not t.done()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.config.application_close_timeout)
            for task in pending:
                task.cancel()
        if self._ticker is not None:
            self._ticker.cancel()
        if self.lifespan is not None:
            await self.lifespan.shutdown()
        for server in self.servers:
            await server.wait_closed()

    async def serve(self, sock: socket.socket | None = None) -> None:
        loop = asyncio.get_running_loop()
        await self.startup(sock)
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.request_exit)
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread: the caller stops us with request_exit()
        assert self._exit_event is not None
        if self.should_exit:
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


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def serve_forever(config: Config, sock: socket.socket | None = None) -> None:
    logger.info("Started server process [%d]", os.getpid())
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(Server(config).serve(sock))
    finally:
        loop.close()
    logger.info("Finished server process [%d]", os.getpid())


def run(app: Any, **options: Any) -> None:
    """Serve ``app`` (an ASGI callable or ``"module:attr"``) until SIGTERM/SIGINT.

    Raises ``AppImportError``/``AppShapeError`` for an unusable application and
    :class:`ListenError` when the address cannot be listened on, before serving anything.
    """
    from switchboard.server.supervisor import run_supervised

    config = Config(app=app, **options)
    configure_logging(config.log_level)
    if config.workers > 1:
        run_supervised(config)
    else:
        # Import and vet the app before binding, as the supervisor does, and bind before
        # lifespan startup so a busy port does not run (and strand) the app's startup.
        config.load()
        serve_forever(config, bind_socket(config))
