"""``switchboard serve module:attr [options]`` (also ``python -m switchboard serve``)."""

from __future__ import annotations

import argparse
import sys

from switchboard.server.config import AppImportError, Config


def _optional_float(value: str) -> float | None:
    return None if value.lower() in ("none", "off", "0") else float(value)


def build_parser() -> argparse.ArgumentParser:
    d = Config()
    parser = argparse.ArgumentParser(prog="switchboard", description="Switchboard ASGI server")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="serve an ASGI application")
    p.add_argument("app", help="the application, as module:attribute")
    p.add_argument("--host", default=d.host)
    p.add_argument("--port", type=int, default=d.port)
    p.add_argument("--uds", help="listen on this unix socket path instead")
    p.add_argument("--fd", type=int, help="listen on this already-bound file descriptor")
    p.add_argument("--workers", type=int, default=d.workers)
    p.add_argument("--root-path", default=d.root_path)
    p.add_argument("--proxy-headers", action="store_true")
    p.add_argument("--forwarded-allow-ips", default=d.forwarded_allow_ips)
    p.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=d.access_log)
    p.add_argument("--log-level", default=d.log_level)
    p.add_argument("--lifespan", choices=("auto", "on", "off"), default=d.lifespan)
    p.add_argument("--timeout-keep-alive", type=float, default=d.timeout_keep_alive)
    p.add_argument("--timeout-graceful-shutdown", type=float, default=d.timeout_graceful_shutdown)
    p.add_argument("--application-close-timeout", type=float, default=d.application_close_timeout)
    p.add_argument("--ws-handshake-timeout", type=float, default=d.ws_handshake_timeout)
    p.add_argument("--ws-max-size", type=int, default=d.ws_max_size)
    p.add_argument("--ws-max-queue", type=int, default=d.ws_max_queue)
    p.add_argument("--ws-ping-interval", type=_optional_float, default=d.ws_ping_interval)
    p.add_argument("--ws-ping-timeout", type=_optional_float, default=d.ws_ping_timeout)
    p.add_argument("--ws-per-message-deflate", action="store_true")
    p.add_argument("--max-header-size", type=int, default=d.max_header_size)
    p.add_argument("--max-body-size", type=int, default=d.max_body_size)
    p.add_argument("--limit-concurrency", type=int, default=None)
    p.add_argument("--backlog", type=int, default=d.backlog)
    p.add_argument("--interface", choices=("auto", "asgi", "wsgi"), default=d.interface,
                   help="auto: detect WSGI apps and swap Django's ASGI handler for the native "
                   "path; asgi: serve the application as given; wsgi: a PEP 3333 app")  # fmt: skip
    p.add_argument("--threads", type=int, default=d.threads,
                   help="threads running WSGI and native Django HTTP requests")  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    from switchboard.server.server import run

    args = vars(build_parser().parse_args(argv))
    args.pop("command")
    app = args.pop("app")
    sys.path.insert(0, ".")
    try:
        run(app, **args)
    except AppImportError as exc:
        print(f"switchboard: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
