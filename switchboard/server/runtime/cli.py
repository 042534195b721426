"""``switchboard serve module:attr [options]`` (also ``python -m switchboard serve``): the
options and how errors end the process. The console script is ``switchboard.cli.main``, which
calls :func:`main` with the hooks of the parts above the server (the metrics endpoint).

Exit status: 0 after a graceful stop, 1 when the address cannot be listened on, 2 for a bad
command line, an application that cannot be imported or is not an ASGI application, a
startup check that refuses the application (Django's system checks), ``--metrics-port``
without ``prometheus_client``, or TLS files that cannot be used.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any, Protocol

from switchboard.server.asgi.app_check import AppShapeError
from switchboard.server.runtime.config import AppImportError, Config
from switchboard.server.runtime.health import check_path
from switchboard.server.runtime.logging_setup import LOG_FORMATS, LOG_LEVELS
from switchboard.server.runtime.metrics_hook import MetricsSetupError
from switchboard.server.runtime.startup import StartupCheckError
from switchboard.server.runtime.tls import TLSConfigError

if TYPE_CHECKING:
    from switchboard.server.runtime.metrics_hook import MetricsHook

EXIT_LISTEN_ERROR = 1
EXIT_APP_ERROR = 2


class CliExtension(Protocol):
    """Options of ``switchboard serve`` offered by a part above the server (``--gateway``):
    it adds its arguments to the parser, then takes them back out of the parsed options and
    turns them into ``run()`` options (such as ``app_wrapper``)."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def configure(self, options: dict[str, Any]) -> None:
        """Pop this extension's own entries from ``options`` and set ``run()`` options."""
        ...


def _optional_float(value: str) -> float | None:
    return None if value.lower() in ("none", "off", "0") else float(value)


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, not {value}")
    return number


def _health_path(value: str) -> str:
    try:
        return check_path(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _version() -> str:
    try:
        return f"switchboard {version('switchboard')}"
    except PackageNotFoundError:  # a source tree that was never installed
        return "switchboard (version unknown: not installed)"


def build_parser(extensions: Iterable[CliExtension] = ()) -> argparse.ArgumentParser:
    d = Config()
    parser = argparse.ArgumentParser(prog="switchboard", description="Switchboard ASGI server")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "serve",
        help="serve an ASGI application",
        description="Serve an ASGI application over HTTP/1.1, HTTP/2 and WebSocket.",
        epilog="Exit status: 0 after a graceful stop (SIGTERM or Ctrl-C), 1 when the address "
        "cannot be listened on, 2 for a bad command line or application.",
    )
    p.add_argument("--version", action="version", version=_version())
    p.add_argument(
        "app",
        help="the ASGI application as module:attribute, e.g. mysite.asgi:application "
        "(imported with the current directory on sys.path)",
    )

    where = p.add_argument_group("where to listen")
    where.add_argument("--host", default=d.host, help="interface to bind (default: %(default)s)")
    where.add_argument("--port", type=int, default=d.port, help="TCP port (default: %(default)s)")
    where.add_argument(
        "--uds",
        metavar="PATH",
        help="listen on this unix socket instead of --host/--port (default: none)",
    )
    where.add_argument(
        "--fd",
        type=int,
        help="listen on this already bound socket's file descriptor (from a process manager) "
        "instead of --host/--port (default: none)",
    )
    where.add_argument(
        "--backlog",
        type=int,
        default=d.backlog,
        metavar="N",
        help="connections waiting to be accepted (default: %(default)s)",
    )

    procs = p.add_argument_group("processes")
    procs.add_argument(
        "--workers",
        type=int,
        default=d.workers,
        metavar="N",
        help="worker processes sharing the socket, restarted if they die; SIGHUP restarts "
        "them one at a time (default: %(default)s)",
    )
    procs.add_argument(
        "--lifespan",
        choices=("auto", "on", "off"),
        default=d.lifespan,
        help="ASGI lifespan events: auto uses them if the app supports them, on requires "
        "them, off never sends them (default: %(default)s)",
    )

    http = p.add_argument_group("HTTP and proxies")
    http.add_argument(
        "--root-path",
        default=d.root_path,
        metavar="PATH",
        help="the URL prefix the app is mounted under, as ASGI root_path (default: none)",
    )
    http.add_argument(
        "--proxy-headers",
        action="store_true",
        help="take the client address and scheme from X-Forwarded-For/-Proto, when the "
        "peer is in --forwarded-allow-ips (default: off)",
    )
    http.add_argument(
        "--forwarded-allow-ips",
        default=d.forwarded_allow_ips,
        metavar="IPS",
        help="comma-separated proxy addresses trusted for --proxy-headers, or * for any "
        "(default: %(default)s)",
    )
    http.add_argument(
        "--max-header-size",
        type=int,
        default=d.max_header_size,
        metavar="BYTES",
        help="largest request head, in bytes; larger gets 431 (default: %(default)s)",
    )
    http.add_argument(
        "--max-body-size",
        type=int,
        default=d.max_body_size,
        metavar="BYTES",
        help="largest request body, in bytes; larger gets 413 (default: %(default)s = 100 MiB)",
    )
    http.add_argument(
        "--limit-concurrency",
        type=int,
        default=None,
        metavar="N",
        help="most open connections; a connection beyond it gets a 503 and is closed (a TLS "
        "one counts from its accept, and is closed before its handshake) (default: no limit)",
    )

    timeouts = p.add_argument_group("timeouts (seconds)")
    timeouts.add_argument(
        "--timeout-keep-alive",
        type=float,
        default=d.timeout_keep_alive,
        metavar="SECONDS",
        help="close an idle keep-alive connection after this many seconds (default: %(default)s)",
    )
    timeouts.add_argument(
        "--timeout-graceful-shutdown",
        type=float,
        default=d.timeout_graceful_shutdown,
        metavar="SECONDS",
        help="on SIGTERM/Ctrl-C, seconds to let open connections finish before closing them "
        "(default: %(default)s)",
    )
    timeouts.add_argument(
        "--application-close-timeout",
        type=float,
        default=d.application_close_timeout,
        metavar="SECONDS",
        help="seconds an application task gets to return after its client is gone, before it "
        "is cancelled (default: %(default)s)",
    )

    ws = p.add_argument_group("WebSocket")
    ws.add_argument(
        "--ws-handshake-timeout",
        type=float,
        default=d.ws_handshake_timeout,
        metavar="SECONDS",
        help="seconds the application has to accept or reject a handshake before it is "
        "answered 500; 0 disables (default: %(default)s)",
    )
    ws.add_argument(
        "--ws-max-size",
        type=int,
        default=d.ws_max_size,
        metavar="BYTES",
        help="largest incoming message, in bytes (default: %(default)s = 1 MiB)",
    )
    ws.add_argument(
        "--ws-max-queue",
        type=int,
        default=d.ws_max_queue,
        metavar="N",
        help="incoming messages buffered for the application before reading from the client "
        "pauses; 0 = unlimited (default: %(default)s)",
    )
    ws.add_argument(
        "--ws-ping-interval",
        type=_optional_float,
        default=d.ws_ping_interval,
        metavar="SECONDS",
        help="send a ping every this many seconds; none/off/0 disables (default: %(default)s)",
    )
    ws.add_argument(
        "--ws-ping-timeout",
        type=_optional_float,
        default=d.ws_ping_timeout,
        metavar="SECONDS",
        help="close the connection if a ping is unanswered this long; none/off/0 disables "
        "(default: %(default)s)",
    )
    ws.add_argument(
        "--ws-send-timeout",
        type=_optional_float,
        default=d.ws_send_timeout,
        metavar="SECONDS",
        help="longest a message send waits for a client that is not reading; then the "
        "connection is dropped (the app reads code 1006); none/off/0 waits for ever "
        "(default: %(default)s)",
    )
    ws.add_argument(
        "--ws-per-message-deflate",
        action="store_true",
        help="offer the permessage-deflate compression extension (default: off)",
    )

    tls = p.add_argument_group(
        "TLS and HTTP/2",
        "With --ssl-certfile the server speaks TLS (https, wss), offering HTTP/2 and HTTP/1.1 "
        "by ALPN; SIGHUP reloads the certificate files. In the clear, HTTP/2 clients with "
        "prior knowledge (h2c) are served too.",
    )
    tls.add_argument(
        "--ssl-certfile",
        metavar="PATH",
        help="server certificate chain, PEM; turns TLS on (default: none, plain TCP)",
    )
    tls.add_argument(
        "--ssl-keyfile",
        metavar="PATH",
        help="private key, PEM (default: none, the key is in --ssl-certfile)",
    )
    tls.add_argument(
        "--ssl-keyfile-password",
        metavar="PASSWORD",
        help="password of an encrypted key (default: none)",
    )
    tls.add_argument(
        "--ssl-ca-certs",
        metavar="PATH",
        help="CA certificates that client certificates are verified against (default: none)",
    )
    tls.add_argument(
        "--ssl-cert-reqs",
        type=int,
        choices=(0, 1, 2),
        default=d.ssl_cert_reqs,
        help="client certificates: 0 not asked for, 1 optional, 2 required (default: %(default)s)",
    )
    tls.add_argument(
        "--ssl-ciphers",
        metavar="LIST",
        help="OpenSSL cipher list for TLS 1.2 (default: none, OpenSSL's own)",
    )
    tls.add_argument(
        "--ssl-handshake-timeout",
        type=_positive_float,
        default=d.ssl_handshake_timeout,
        metavar="SECONDS",
        help="close a connection whose TLS handshake is not done after this many seconds "
        "(default: %(default)s)",
    )
    tls.add_argument(
        "--http2",
        action=argparse.BooleanOptionalAction,
        default=d.http2,
        help="serve HTTP/2: ALPN h2 over TLS, prior-knowledge h2c in the clear (default: on)",
    )
    tls.add_argument(
        "--h2-max-concurrent-streams",
        type=int,
        default=d.h2_max_concurrent_streams,
        metavar="N",
        help="streams a client may have open on one HTTP/2 connection (default: %(default)s)",
    )
    tls.add_argument(
        "--h2-connection-window",
        type=int,
        default=d.h2_connection_window,
        metavar="BYTES",
        help="request body one HTTP/2 connection may send ahead of what applications read "
        "(its flow-control window; at least 65535) (default: %(default)s)",
    )
    tls.add_argument(
        "--h2-max-buffered-body",
        type=int,
        default=d.h2_max_buffered_body,
        metavar="BYTES",
        help="window all HTTP/2 connections of a process may get beyond the 65535 bytes each "
        "starts with; once lent out, new connections get only those (default: %(default)s)",
    )

    logs = p.add_argument_group("logging (stderr)")
    logs.add_argument(
        "--log-level",
        type=str.lower,
        choices=LOG_LEVELS,
        default=d.log_level,
        help="least severe level logged by the server's loggers (switchboard.*); Django's and "
        "other loggers keep their own configuration (default: %(default)s)",
    )
    logs.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=d.access_log,
        help="log one line per HTTP request and WebSocket handshake (default: on)",
    )
    logs.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=d.log_format,
        help="text lines, or one JSON object per line with the access log's fields "
        "(default: %(default)s)",
    )
    metrics = p.add_argument_group("metrics (Prometheus; needs switchboard[metrics])")
    metrics.add_argument(
        "--metrics-port",
        type=int,
        default=d.metrics_port,
        metavar="PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics; with --workers N, worker k "
        "serves on PORT+k (default: off)",
    )
    metrics.add_argument(
        "--metrics-host",
        default=d.metrics_host,
        metavar="HOST",
        help="interface the metrics endpoint binds; it has no authentication, so keep it "
        "private (default: %(default)s)",
    )
    health = p.add_argument_group(
        "health endpoints",
        "Answered by the server itself, without calling the application; off by default.",
    )
    health.add_argument(
        "--health-path",
        type=_health_path,
        default=d.health_path,
        metavar="PATH",
        help="liveness: 200 ok while the process serves, e.g. /healthz (default: off)",
    )
    health.add_argument(
        "--ready-path",
        type=_health_path,
        default=d.ready_path,
        metavar="PATH",
        help="readiness: 200 when the application's readiness checks pass (Django: a round "
        "trip through the channel layer), else 503, e.g. /readyz (default: off)",
    )
    health.add_argument(
        "--ready-timeout",
        type=float,
        default=d.ready_timeout,
        metavar="SECONDS",
        help="time the readiness checks get before the answer is 503 (default: %(default)s)",
    )
    procs.add_argument(
        "--interface",
        choices=("auto", "asgi", "wsgi"),
        default=d.interface,
        help="what the application speaks: auto detects WSGI callables and serves Django's "
        "own ASGI handler through the native Django HTTP path; asgi serves it as given; wsgi "
        "serves a PEP 3333 application (default: %(default)s)",
    )
    procs.add_argument(
        "--threads",
        type=int,
        default=d.threads,
        metavar="N",
        help="threads per process running WSGI and native Django HTTP requests (default: "
        "Django's SWITCHBOARD_HTTP_THREADS setting for the native path, else 4)",
    )
    for extension in extensions:
        extension.add_arguments(p)
    return parser


def main(
    argv: list[str] | None = None,
    metrics: MetricsHook | None = None,
    extensions: Iterable[CliExtension] = (),
) -> int:
    """Run the command line ``argv``; ``metrics`` serves ``--metrics-port``; ``extensions``
    add options of their own."""
    from switchboard.server.runtime.server import ListenError, run

    extensions = list(extensions)
    parser = build_parser(extensions)
    args = vars(parser.parse_args(argv))
    if args["health_path"] is not None and args["health_path"] == args["ready_path"]:
        parser.error("--health-path and --ready-path must differ")
    args.pop("command")
    for extension in extensions:
        try:
            extension.configure(args)
        except ValueError as exc:
            parser.error(str(exc))
    app = args.pop("app")
    sys.path.insert(0, ".")
    try:
        run(app, metrics=metrics, **args)
    except (
        AppImportError,
        AppShapeError,
        MetricsSetupError,
        StartupCheckError,
        TLSConfigError,
    ) as exc:
        print(f"switchboard: error: {exc}", file=sys.stderr)
        return EXIT_APP_ERROR
    except ListenError as exc:
        print(f"switchboard: error: {exc}", file=sys.stderr)
        return EXIT_LISTEN_ERROR
    return 0
