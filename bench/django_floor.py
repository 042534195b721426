"""Django alone: the CPU a request costs in Django's ``WSGIHandler`` with no server around it.

bench/django_http.py runs this in its own process (same interpreter, settings and database as
the servers) and divides each server's CPU per request by its figure: what is left above 1.0 is
the server's share. The loop does what a WSGI server does for wrk's request, nothing else: a
fresh environ (``GET <path> HTTP/1.1`` with only a ``Host`` header, as wrk sends it), the
handler's call, the body iterated and joined, ``close()`` (``request_finished``). Requests
run after a warm-up until ``--seconds`` of CPU are spent; the CPU time is the process's
utime+stime (``time.process_time``), so it is measured the way the servers' is.

Usage: python -m bench.django_floor [--path /plain/] [--seconds S] [--warmup N]
       (prints one JSON line: path, requests, cpu_us_per_request)
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

# What a server builds for wrk's request; REMOTE_PORT and the Host port are what they would be.
BASE_ENVIRON: dict[str, Any] = {
    "REQUEST_METHOD": "GET",
    "SCRIPT_NAME": "",
    "QUERY_STRING": "",
    "SERVER_NAME": "127.0.0.1",
    "SERVER_PORT": "8000",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "REMOTE_ADDR": "127.0.0.1",
    "REMOTE_PORT": "50000",
    "HTTP_HOST": "127.0.0.1:8000",
    "wsgi.version": (1, 0),
    "wsgi.url_scheme": "http",
    "wsgi.errors": sys.stderr,
    "wsgi.multithread": True,
    "wsgi.multiprocess": False,
    "wsgi.run_once": False,
}


def request(app: Callable[..., Iterable[bytes]], base: dict[str, Any]) -> str:
    """One request as a WSGI server makes it; returns the status line."""
    status = ""

    def start_response(s: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        nonlocal status
        status = s

    environ = dict(base)
    environ["wsgi.input"] = io.BytesIO(b"")
    result = app(environ, start_response)
    try:
        b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return status


def measure(path: str, seconds: float, warmup: int) -> dict[str, Any]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.django_project.settings")
    from django.core.wsgi import get_wsgi_application

    app = get_wsgi_application()
    base = {**BASE_ENVIRON, "PATH_INFO": path}
    status = request(app, base)
    if not status.startswith("200"):
        sys.exit(f"django_floor: GET {path} answered {status!r}")
    for _ in range(warmup):
        request(app, base)
    count = 0
    start = time.process_time()
    while True:
        for _ in range(100):  # reading the clock every request would cost a share itself
            request(app, base)
        count += 100
        used = time.process_time() - start
        if used >= seconds:
            break
    return {"path": path, "requests": count, "cpu_us_per_request": used / count * 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--path", default="/plain/")
    ap.add_argument("--seconds", type=float, default=2.0, help="CPU seconds of requests")
    ap.add_argument("--warmup", type=int, default=500)
    args = ap.parse_args()
    print(json.dumps(measure(args.path, args.seconds, args.warmup)))


if __name__ == "__main__":
    main()
