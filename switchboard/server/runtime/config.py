"""Server settings, shared by the CLI, ``run()`` and the protocols."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from switchboard.server.asgi.app_check import check_asgi_app
from switchboard.server.runtime.app_import import AppImportError, import_app

if TYPE_CHECKING:
    from switchboard.server.runtime.metrics_hook import MetricsHook

__all__ = ["FORCE_EXIT_MARGIN", "AppImportError", "Config", "import_app"]

# Past timeout_graceful_shutdown, cancelled application tasks and the lifespan shutdown share
# this many seconds; then the process exits, whatever is still running (server.ExitWatchdog;
# the supervisor kills a worker that outlives twice this).
FORCE_EXIT_MARGIN = 1.0


@dataclass
class Config:
    app: Any = None
    host: str = "127.0.0.1"
    port: int = 8000
    uds: str | None = None
    fd: int | None = None
    workers: int = 1
    root_path: str = ""
    proxy_headers: bool = False
    forwarded_allow_ips: str = "127.0.0.1"
    access_log: bool = True
    log_level: str = "info"
    log_format: str = "text"  # "text" | "json" (runtime/logging_setup.py)
    lifespan: str = "auto"  # "auto" | "on" | "off"
    timeout_keep_alive: float = 5.0
    timeout_graceful_shutdown: float = 30.0
    application_close_timeout: float = 10.0
    ws_handshake_timeout: float = 5.0
    ws_max_size: int = 1 << 20
    ws_max_queue: int = 32
    ws_ping_interval: float | None = 20.0
    ws_ping_timeout: float | None = 20.0
    ws_per_message_deflate: bool = False
    # Longest a websocket.send waits for a client that is not reading what is already
    # buffered for it; then the connection is dropped (connections/ws_connection.py).
    # None or 0: wait as long as the connection lasts.
    ws_send_timeout: float | None = 30.0
    max_header_size: int = 16384
    max_body_size: int = 100 << 20
    limit_concurrency: int | None = None
    backlog: int = 2048
    server_header: bool = True
    date_header: bool = True
    interface: str = "auto"  # "auto" | "asgi" | "wsgi" (see runtime/interfaces.py)
    threads: int | None = None  # pool size for WSGI / native Django HTTP (server/wsgi/)
    # Metrics over HTTP; worker k uses port + k. Served by the ``metrics`` hook
    # (runtime/metrics_hook.py), which `switchboard serve` sets to switchboard.metrics'.
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    metrics: MetricsHook | None = None
    # TLS (runtime/tls.py); uvicorn's option names. ssl_cert_reqs is an ssl.VerifyMode value.
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_keyfile_password: str | None = None
    ssl_ca_certs: str | None = None
    ssl_cert_reqs: int = 0  # ssl.CERT_NONE
    ssl_ciphers: str | None = None  # OpenSSL's defaults
    # Seconds a connection gets to complete its TLS handshake (asyncio's default is 60).
    ssl_handshake_timeout: float = 10.0
    # HTTP/2 (server/h2/): ALPN h2 over TLS, prior-knowledge h2c in the clear.
    http2: bool = True
    h2_max_concurrent_streams: int = 100
    # Request body a connection may send ahead of what applications read (its flow-control
    # window, at least the protocol's 65535), and what all connections of a process may have
    # beyond 65535 each (connections/h2/limits.py WindowBudget).
    h2_connection_window: int = 256 << 10
    h2_max_buffered_body: int = 64 << 20
    # Answered by the server itself, off unless given (runtime/health.py).
    health_path: str | None = None
    ready_path: str | None = None
    ready_timeout: float = 1.0
    # Applied to the loaded application once in each serving process, before it serves
    # (``serve --gateway`` relays WebSockets to workers this way; see runtime/cli.py's
    # extensions). Each process gets its own wrapped application.
    app_wrapper: Callable[[Any], Any] | None = None

    def load(self) -> Any:
        """Resolve ``app`` to the ASGI callable (import strings allowed, WSGI adapted, Django's
        ASGI handler swapped for the native path) and vet its shape.

        Raises :class:`AppImportError` or
        :class:`~switchboard.server.asgi.app_check.AppShapeError`.
        """
        from switchboard.server.runtime.interfaces import resolve_interface
        from switchboard.server.wsgi import thread_pool

        name = self.app if isinstance(self.app, str) else None
        if self.threads is not None:
            thread_pool.set_default_threads(self.threads)
        self.app = resolve_interface(import_app(self.app), self.interface)
        check_asgi_app(self.app, name)
        return self.app

    @property
    def trusted_proxies(self) -> set[str] | None:
        """``None`` means every peer is trusted (``*``)."""
        items = {ip.strip() for ip in self.forwarded_allow_ips.split(",") if ip.strip()}
        return None if "*" in items else items
