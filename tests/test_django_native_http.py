"""The native Django HTTP path (switchboard/django_http.py) against Django's own ASGI handler.

Every server here is ``switchboard serve`` in a subprocess serving tests/sites/django_native (the
tests/sites/django_site project plus a few introspection views), spoken to with real sockets. The
comparison runs the same requests through Django's ``ASGIHandler`` (``SWITCHBOARD_NATIVE_HTTP
= False``) and through the native path, with and without a root path (``SCRIPT_NAME``), and
wants the same status, header fields (minus ``Date``) and bodies, random tokens masked.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from tests.sites.django_site.serving import ServedSite, bootstrap_site, site_env
from tests.sites.django_site.serving import serve as serve_site

# ProtocolTypeRouter({"http": ASGIHandler})
ROUTER_APP = "tests.sites.django_native.asgi:application"
BARE_APP = "tests.sites.django_site.asgi:application"  # get_asgi_application(), nothing around it
WSGI_APP = "tests.sites.django_native.wsgi:application"  # get_wsgi_application()
DOWNLOAD_SIZE = 1024 * 1024 + 77
NATIVE_SETTINGS = "tests.sites.django_native.settings"


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site_dir = tmp_path_factory.mktemp("django_native")
    (site_dir / "download.bin").write_bytes(os.urandom(DOWNLOAD_SIZE))
    bootstrap_site(site_dir)
    return site_dir


def serve(site_dir: Path, app: str, *args: str, **env: str) -> AbstractContextManager[ServedSite]:
    """``switchboard serve app args`` with the native test site's settings and ``env``."""

    def command(port: int) -> list[str]:
        return [sys.executable, "-m", "switchboard", "serve", app, "--port", str(port),
                "--log-level", "warning", *args]  # fmt: skip

    return serve_site(
        site_dir,
        command,
        env=site_env(site_dir, NATIVE_SETTINGS, **env),
        log_path=site_dir / f"server-{time.monotonic_ns()}.log",
    )


def fetch(
    port: int,
    method: str,
    path: str,
    headers: list[tuple[str, str]] = (),
    body: bytes | list[bytes] | None = None,
) -> tuple[int, list[tuple[str, str]], bytes]:
    """One request on a fresh connection: status, header fields in order, body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        if isinstance(body, list):  # chunked (RFC 9112 section 7.1): no length up front
            conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            for chunk in body:
                conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            conn.send(b"0\r\n\r\n")
        else:
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
        response = conn.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        conn.close()


def get_json(port: int, path: str, headers: list[tuple[str, str]] = ()) -> dict:
    status, _, body = fetch(port, "GET", path, headers)
    assert status == 200, body[:2000]
    return json.loads(body)


# --- the same requests through Django's ASGI handler and the native path ---------------------

BOUNDARY = "native-boundary-0123456789"


def multipart(size: int) -> bytes:
    content = bytes(range(256)) * (size // 256) + b"tail"
    return b"".join(
        [
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhi\r\n'.encode(),
            f"--{BOUNDARY}\r\n".encode(),
            b'Content-Disposition: form-data; name="file"; filename="f.bin"\r\n',
            b"Content-Type: application/octet-stream\r\n\r\n",
            content,
            f"\r\n--{BOUNDARY}--\r\n".encode(),
        ]
    )


FORM = [("Content-Type", "application/x-www-form-urlencoded")]
OCTETS = [("Content-Type", "application/octet-stream")]
CASES: list[tuple[str, str, list[tuple[str, str]], bytes | list[bytes] | None]] = [
    ("GET", "/hello/", [], None),
    ("HEAD", "/hello/", [], None),
    ("GET", "/no/such/page/?x=1", [], None),
    ("GET", "/caf%C3%A9/%E2%9C%93/", [], None),  # a 404 page echoing a non-ASCII path
    ("GET", "/contact/", [], None),
    ("POST", "/contact/", FORM, b"name=Mallory&message=no+token"),  # CSRF failure: 403
    ("GET", "/admin/", [], None),  # redirect to the login page, under the root path
    ("GET", "/admin/login/?next=/admin/", [], None),
    ("GET", "/stream/", [], None),
    ("GET", "/download/", [], None),
    ("GET", "/async/", [], None),
    ("GET", "/counter/", [], None),
    ("POST", "/raw-body/", OCTETS, os.urandom(300_000)),
    ("POST", "/raw-body/", OCTETS, [os.urandom(n) for n in (1, 70_000, 5, 200_000)]),
    (
        "POST",
        "/upload/",
        [("Content-Type", f"multipart/form-data; boundary={BOUNDARY}")],
        multipart(100_000),
    ),  # fmt: skip
    (
        "POST",
        "/upload/",
        [("Content-Type", f"multipart/form-data; boundary={BOUNDARY}")],
        multipart(3_000_000),
    ),  # fmt: skip # beyond FILE_UPLOAD_MAX_MEMORY_SIZE: on disk
    (
        "GET",
        "/native/whoami/?q=1&q=%C3%A9",
        [("X-Multi", "a"), ("X-Multi", "b"), ("Cookie", "a=1; b=2")],
        None,
    ),  # fmt: skip
]
_TOKEN = re.compile(rb'(name="csrfmiddlewaretoken" value=")[^"]+(")')
_COOKIE_VALUE = re.compile(r"^([^=]+)=[^;]*")
_EXPIRES = re.compile(r"expires=[^;]+")


def normalised(path: str, status: int, headers: list[tuple[str, str]], body: bytes) -> tuple:
    fields = []
    for name, value in headers:
        name = name.lower()
        if name == "date":
            continue
        # never_cache (the admin login page) sets Expires to the second the response was made:
        # the two servers' responses can fall on either side of a second boundary.
        if name == "expires":
            value = "*"
        if name == "set-cookie":  # random tokens and a clock: keep names and attributes
            value = _EXPIRES.sub("expires=*", _COOKIE_VALUE.sub(r"\1=*", value))
        fields.append((name, value))
    body = _TOKEN.sub(rb"\1*\2", body)
    if path.startswith("/native/whoami/"):
        data = json.loads(body)
        del data["request_class"], data["thread"]  # what differs by design
        data["absolute_uri"] = re.sub(r":\d+/", ":*/", data["absolute_uri"])
        body = json.dumps(data, sort_keys=True).encode()
        fields = [(name, value) for name, value in fields if name != "content-length"]
    return status, sorted(fields), body


@pytest.fixture(scope="module", params=["", "/mount"], ids=["no-root-path", "root-path"])
def pair(request: pytest.FixtureRequest, site_dir: Path) -> Iterator[tuple[int, int, str]]:
    root = request.param
    args = ("--root-path", root) if root else ()
    with serve(site_dir, ROUTER_APP, *args, SWITCHBOARD_NATIVE_HTTP="0") as stock:
        with serve(site_dir, ROUTER_APP, *args) as native:
            yield stock.port, native.port, root


@pytest.mark.parametrize("case", CASES, ids=[f"{m} {p}" for m, p, *_ in CASES])
def test_native_path_answers_like_djangos_asgi_handler(pair, case) -> None:
    stock_port, native_port, _root = pair  # the server puts the root path in front
    method, path, headers, body = case
    expected = normalised(path, *fetch(stock_port, method, path, headers, body))
    got = normalised(path, *fetch(native_port, method, path, headers, body))
    assert got == expected
    assert expected[0] in (200, 302, 403, 404)


def test_the_comparison_really_runs_both_handlers(pair) -> None:
    stock_port, native_port, root = pair
    stock = get_json(stock_port, "/native/whoami/")
    native = get_json(native_port, "/native/whoami/")
    assert stock["request_class"] == "ASGIRequest"
    assert native["request_class"] == "_TerminatedInputRequest"  # Django's WSGI request
    assert native["thread"].startswith("switchboard-wsgi")
    # SCRIPT_NAME is the root path; the path below it is what the URLconf matched.
    assert native["script_name"] == stock["script_name"] == root
    assert native["path"] == f"{root}/native/whoami/"
    assert native["path_info"] == "/native/whoami/"


def test_repeated_cookie_fields_are_joined_as_one_cookie_list(pair) -> None:
    # RFC 9113 section 8.2.3 / RFC 6265 section 5.4: split Cookie fields join with "; ".
    # (Django's ASGI handler joins them with "," and so reads {"a": "1,b=2"}.)
    cookies = [("Cookie", "a=1"), ("Cookie", "b=2")]
    whoami = get_json(pair[1], "/native/whoami/", cookies)
    assert whoami["cookies"] == {"a": "1", "b": "2"}


def test_signals_fire_once_per_request_like_djangos_handler(pair) -> None:
    for port in pair[:2]:
        get_json(port, "/native/signals/reset/")
        for _ in range(5):
            assert fetch(port, "GET", "/hello/")[0] == 200
        time.sleep(0.3)  # Django's ASGI handler sends request_finished after the response
        # The reset's own request_finished, 5 full requests, and this request's start.
        assert get_json(port, "/native/signals/") == {"started": 6, "finished": 6}


# --- detection, opt-out, interfaces ----------------------------------------------------------


def test_serve_swaps_a_bare_asgi_handler_and_interface_asgi_opts_out(site_dir: Path) -> None:
    with serve(site_dir, BARE_APP) as native:
        assert get_json(native.port, "/native/whoami/")["request_class"] != "ASGIRequest"
    with serve(site_dir, BARE_APP, "--interface", "asgi") as stock:
        assert get_json(stock.port, "/native/whoami/")["request_class"] == "ASGIRequest"
    with serve(site_dir, BARE_APP, SWITCHBOARD_NATIVE_HTTP="0") as stock:
        assert get_json(stock.port, "/native/whoami/")["request_class"] == "ASGIRequest"


@pytest.mark.parametrize("args", [("--interface", "wsgi"), ()], ids=["explicit", "detected"])
def test_django_wsgi_application_served_as_wsgi(site_dir: Path, args) -> None:
    with serve(site_dir, WSGI_APP, *args) as site:
        status, headers, body = fetch(site.port, "GET", "/hello/")
        assert (status, body) == (200, b"Hello from Django over ASGI.\n")
        assert ("X-Hello", "world") in headers
        assert get_json(site.port, "/native/whoami/")["request_class"] == "WSGIRequest"
        payload = os.urandom(50_000)
        status, _, body = fetch(site.port, "POST", "/raw-body/", OCTETS, payload)
        assert status == 200
        assert json.loads(body)["size"] == len(payload)
        # A body of unknown length (chunked): plain WSGI Django reads none of it, as under
        # any WSGI server; the native path (tested above) reads it all, as its ASGI handler.
        status, _, body = fetch(site.port, "POST", "/raw-body/", OCTETS, [b"abc"])
        assert json.loads(body)["size"] == 0


# --- what runs where -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def one_thread(site_dir: Path) -> Iterator[ServedSite]:
    with serve(site_dir, ROUTER_APP, "--threads", "1") as site:
        yield site


def test_async_view_runs_on_the_servers_event_loop(one_thread: ServedSite) -> None:
    # async_to_sync in the pool thread finds the server's loop (not a loop of its own).
    assert get_json(one_thread.port, "/native/async-thread/") == {
        "thread": "MainThread",
        "users": 1,
    }


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_client_disconnect_mid_stream_ends_and_closes_the_iterator(
    one_thread: ServedSite, kind: str
) -> None:
    marker = one_thread.site_dir / f"closed-{kind}-{kind}1"
    with socket.create_connection(("127.0.0.1", one_thread.port), timeout=10) as sock:
        request = f"GET /native/endless-{kind}/?id={kind}1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        sock.sendall(request.encode())
        received = b""
        while len(received) < 20_000:
            chunk = sock.recv(65536)
            assert chunk, received[:300]
            received += chunk
        assert received.startswith(b"HTTP/1.1 200 ")
    deadline = time.monotonic() + 15
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), one_thread.log()
    # A sync stream is closed in the pool thread that ran it; an async one ran on the loop.
    expected = "switchboard-wsgi" if kind == "sync" else "MainThread"
    assert marker.read_text().startswith(expected)
    # The single pool thread is free again.
    assert fetch(one_thread.port, "GET", "/hello/")[0] == 200


def test_websocket_echo_while_the_pool_thread_streams(one_thread: ServedSite) -> None:
    from websockets.sync.client import connect

    with socket.create_connection(("127.0.0.1", one_thread.port), timeout=10) as sock:
        sock.sendall(b"GET /native/endless-sync/?id=ws HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        with connect(f"ws://127.0.0.1:{one_thread.port}/ws/echo/", open_timeout=10) as ws:
            for i in range(20):
                ws.send(f"m{i}")
                assert ws.recv(timeout=10) == f"m{i}"


# --- database connections under concurrent load ----------------------------------------------


def _load(port: int, requests: int = 200, concurrency: int = 20) -> set[str]:
    def one(_: int) -> str:
        return get_json(port, "/native/query/")["thread"]

    with ThreadPoolExecutor(concurrency) as pool:
        return set(pool.map(one, range(requests)))


def test_conn_max_age_keeps_one_connection_per_pool_thread(site_dir: Path) -> None:
    with serve(site_dir, ROUTER_APP, "--threads", "4", NATIVE_CONN_MAX_AGE="60") as site:
        threads = _load(site.port)
        state = get_json(site.port, "/native/db-state/")
    assert 1 <= len(threads) <= 4
    assert all(name.startswith("switchboard-wsgi") for name in threads)
    # Reused across 200 requests: no more connections than threads, and none leaked.
    assert state["wrappers"] == len(threads)
    assert state["created"] <= 4
    assert state["open"] <= 4


def test_conn_max_age_zero_closes_every_connection(site_dir: Path) -> None:
    with serve(site_dir, ROUTER_APP, "--threads", "4", NATIVE_CONN_MAX_AGE="0") as site:
        _load(site.port)
        state = get_json(site.port, "/native/db-state/")
    assert state["created"] == 200  # one per request ...
    assert state["open"] == 0  # ... each closed by request_finished


def test_concurrent_requests_run_in_parallel_threads(site_dir: Path) -> None:
    with serve(site_dir, ROUTER_APP, "--threads", "3") as site:
        seen: set[str] = set()
        lock = threading.Lock()

        def one(_: int) -> None:
            name = get_json(site.port, "/native/whoami/")["thread"]
            with lock:
                seen.add(name)

        with ThreadPoolExecutor(12) as pool:
            list(pool.map(one, range(120)))
    assert 1 <= len(seen) <= 3
