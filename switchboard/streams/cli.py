"""``switchboard publish STREAM DATA [--event E] [--topic] [--url URL] [--key KEY]``.

Two ways to publish, one set of rules (:mod:`switchboard.streams.api_schema`):

* with ``--url`` (or ``SWITCHBOARD_PUBLISH_URL``): ``POST`` to a server's publish API with
  the key from ``--key`` or ``SWITCHBOARD_PUBLISH_KEY`` (standard library only, so any machine
  with Python and Switchboard can send, with no Django project at hand);
* without: Django is set up from ``DJANGO_SETTINGS_MODULE`` and the publication goes straight
  through the project's default channel layer (which must reach other processes: IPC or
  Redis, not the in-memory layer).

``DATA`` is JSON (``'"a string"'``, ``'{"n": 1}'``), or ``-`` to read it from stdin. On
success the answer (``{"stream", "epoch", "offset"}``) is printed on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, TextIO

__all__ = ["EXIT_FAILED", "EXIT_REFUSED", "EXIT_USAGE", "build_parser", "main"]

EXIT_REFUSED = 1  # refused: wrong key, a field the schema rejects, too large
EXIT_USAGE = 2  # the command line cannot be used: bad DATA, no key, no URL nor settings
EXIT_FAILED = 3  # worth retrying: rate limited, the layer or the server is unavailable

URL_ENV = "SWITCHBOARD_PUBLISH_URL"
KEY_ENV = "SWITCHBOARD_PUBLISH_KEY"
_EPILOG = (
    "Exit status: 0 published; 1 refused (wrong key, invalid stream, topic, event or data, "
    "too large); 2 bad command line (DATA not JSON, no key, no URL and no "
    "DJANGO_SETTINGS_MODULE, an in-memory layer); 3 failed but worth retrying (rate limited, "
    "server or channel layer unavailable)."
)


class _Stop(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="switchboard publish",
        description="Publish on a stream (or a reliable topic), through a server's publish "
        "API (--url) or through the project's channel layer (DJANGO_SETTINGS_MODULE).",
        epilog=_EPILOG,
    )
    parser.add_argument("stream", metavar="STREAM", help="the stream's name (with --topic: topic)")
    parser.add_argument("data", metavar="DATA", help="the data, as JSON; - reads it from stdin")
    parser.add_argument("--event", metavar="E", help="the SSE event type (streams only)")
    parser.add_argument(
        "--topic",
        action="store_true",
        help="STREAM is a reliable topic of RealtimeConsumer subscribers; DATA is an object",
    )
    parser.add_argument(
        "--url",
        default=os.environ.get(URL_ENV),
        help=f"the publish API's URL, e.g. https://example.com/switchboard/publish "
        f"(default: ${URL_ENV}; without one, publish through the channel layer)",
    )
    parser.add_argument(
        "--key",
        default=os.environ.get(KEY_ENV),
        help=f"the API key for --url (default: ${KEY_ENV}, which keeps it out of ps)",
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for the server (10)"
    )
    return parser


def _read_data(text: str, stdin: TextIO) -> Any:
    from switchboard.streams.api_schema import parse_json

    raw = stdin.buffer.read() if text == "-" else text.encode("utf-8", "surrogateescape")
    try:
        return parse_json(raw)
    except (ValueError, RecursionError) as exc:
        where = "stdin" if text == "-" else "DATA"
        message = f"{where} is not JSON ({exc}); a string is written '\"text\"'"
        raise _Stop(EXIT_USAGE, message) from None


def _body(args: argparse.Namespace, data: Any) -> dict[str, Any]:
    if args.topic:
        if args.event is not None:
            raise _Stop(EXIT_USAGE, "--event applies to streams, not to --topic")
        return {"topic": args.stream, "data": data}
    body = {"stream": args.stream, "data": data}
    if args.event is not None:
        body["event"] = args.event
    return body


def _warn_if_plain(url: urllib.parse.SplitResult, stderr: TextIO) -> None:
    host = url.hostname or ""
    try:
        local = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = False
    if url.scheme == "http" and not local:
        print(f"switchboard publish: warning: the key goes to {host} unencrypted", file=stderr)


def _post(args: argparse.Namespace, body: dict[str, Any], stderr: TextIO) -> dict[str, Any]:
    url = urllib.parse.urlsplit(args.url)
    if url.scheme not in ("http", "https") or not url.netloc:
        raise _Stop(EXIT_USAGE, f"--url must be an http:// or https:// URL, not {args.url!r}")
    if not args.key:
        raise _Stop(EXIT_USAGE, f"no key: set {KEY_ENV} (or pass --key)")
    _warn_if_plain(url, stderr)
    request = urllib.request.Request(
        args.url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {args.key}",
            "User-Agent": "switchboard-publish",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer
    except urllib.error.HTTPError as error:
        raise _Stop(*_refused(error)) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _Stop(EXIT_FAILED, f"cannot reach {args.url}: {reason}") from None
    except ValueError as exc:  # a 2xx that is not JSON: not a publish API
        raise _Stop(EXIT_FAILED, f"{args.url} answered something else than JSON: {exc}") from None


def _refused(error: urllib.error.HTTPError) -> tuple[int, str]:
    try:
        payload = json.loads(error.read())
        text = f"{payload['error']}: {payload['detail']}"
    except (ValueError, KeyError, TypeError, OSError):
        text = error.reason if isinstance(error.reason, str) else "no details"
    message = f"{error.code} {text}"
    if error.code == 429:
        message += f" (Retry-After: {error.headers.get('Retry-After', '?')} s)"
    temporary = error.code in (429, 502, 503, 504)
    return (EXIT_FAILED if temporary else EXIT_REFUSED), message


def _setup_django() -> None:
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        raise _Stop(
            EXIT_USAGE,
            f"nowhere to publish: pass --url (or set {URL_ENV}) to use a server's publish API, "
            "or set DJANGO_SETTINGS_MODULE to publish through the project's channel layer",
        )
    sys.path.insert(0, os.getcwd())  # as manage.py: the project is importable from here
    import django

    try:
        django.setup()
    except Exception as exc:  # noqa: BLE001 - an unusable project is the operator's to see
        raise _Stop(EXIT_USAGE, f"cannot set up Django: {type(exc).__name__}: {exc}") from None


async def _publish_through_layer(body: dict[str, Any]) -> dict[str, Any]:
    from switchboard.layers import get_channel_layer
    from switchboard.streams.api_schema import PublicationError, parse_publication
    from switchboard.streams.views import publish_publication

    try:
        publication = parse_publication(body)
    except PublicationError as exc:
        raise _Stop(EXIT_REFUSED, f"invalid_field: {exc.field}: {exc.detail}") from None
    layer = get_channel_layer()
    if layer is None:
        raise _Stop(EXIT_USAGE, "no channel layer: configure CHANNEL_LAYERS, or use --url")
    try:
        if not layer.spans_processes:
            raise _Stop(
                EXIT_USAGE,
                f"the default channel layer ({type(layer).__name__}) lives in this process "
                "only, so no subscriber would see the publication: use the IPC or Redis "
                "layer, or --url",
            )
        try:
            return await publish_publication(publication)
        except Exception as exc:  # noqa: BLE001 - the layer's failure, reported as the API does
            raise _Stop(EXIT_FAILED, f"the publication could not be stored: {exc}") from None
    finally:
        await layer.close()


def main(
    argv: list[str] | None = None, *, stdin: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Run ``switchboard publish`` with ``argv`` (the words after ``publish``)."""
    stdin = stdin or sys.stdin
    stderr = stderr or sys.stderr
    args = build_parser().parse_args(argv)
    try:
        body = _body(args, _read_data(args.data, stdin))
        if args.url:
            answer = _post(args, body, stderr)
        else:
            _setup_django()
            answer = asyncio.run(_publish_through_layer(body))
    except _Stop as stop:
        print(f"switchboard publish: error: {stop}", file=stderr)
        return stop.status
    print(json.dumps(answer))
    return 0
