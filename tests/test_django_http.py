"""Django's own ASGI handler (``get_asgi_application()``) served by ``switchboard serve``.

One real server subprocess for the module, serving tests/sites/django_site (admin, auth, sessions,
messages, CSRF, SQLite in a temp directory), and real clients: ``http.client`` with a cookie
jar, raw sockets where the framing itself is under test. Each test is a flow a browser or an
API client performs every day; a server that breaks Django (as POST bodies once did: every one
answered 500) fails here.

Peer comparison (manual, not a test: uvicorn is only in the ``bench`` extra, absent in CI):
``./scripts/bench`` (once: it builds ``.venv-bench`` from the lock, bench extra included), then
``.venv-bench/bin/python -m tests.sites.django_site.peer_check``
runs the same CSRF form flow against Switchboard and uvicorn and prints both outcomes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator

import pytest

from tests.sites.django_site.bootstrap import SUPERUSER, SUPERUSER_PASSWORD
from tests.sites.django_site.serving import (
    Client,
    ServedSite,
    bootstrap_site,
    decode_chunked,
    raw_exchange,
    serve,
    split_head,
)

CSRF_FIELD = re.compile(rb'name="csrfmiddlewaretoken" value="([^"]+)"')
DOWNLOAD_SIZE = 3 * 1024 * 1024 + 123  # not a multiple of any block size
UPLOAD_SIZE = 10 * 1024 * 1024 + 7  # beyond FILE_UPLOAD_MAX_MEMORY_SIZE (2.5 MB): spooled to disk


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedSite]:
    site_dir = tmp_path_factory.mktemp("django_site")
    (site_dir / "download.bin").write_bytes(os.urandom(DOWNLOAD_SIZE))
    bootstrap_site(site_dir)  # migrations and the superuser exist before the server starts
    with serve(site_dir) as served:
        yield served


def csrf_token(page: bytes) -> str:
    match = CSRF_FIELD.search(page)
    assert match, "no csrfmiddlewaretoken field in the page"
    return match.group(1).decode()


def explain(site: ServedSite, response) -> str:
    """Assertion message: status and the server's log (Django's traceback, if it crashed)."""
    return f"status {response.status}; server log:\n{site.log()}"


def test_csrf_form_post_redirects_to_success_page(site: ServedSite) -> None:
    client = Client(site.port)
    form = client.get("/contact/")
    assert form.status == 200
    assert "csrftoken" in client.cookies
    token = csrf_token(form.body)

    sent = client.post_form(
        "/contact/",
        {"csrfmiddlewaretoken": token, "name": "Ada", "message": "Engines & numbers."},
    )
    assert sent.status == 302, explain(site, sent)
    assert sent.header("Location") == "/contact/done/"
    assert "messages" in client.cookies  # the flash message travels in its cookie

    done = client.get(sent.header("Location"))
    assert done.status == 200
    assert b'<li class="message">Thanks, Ada!</li>' in done.body
    assert "messages" not in client.cookies  # shown once, then deleted by Django


def test_form_post_without_csrf_token_is_rejected_with_403(site: ServedSite) -> None:
    client = Client(site.port)
    client.get("/contact/")
    fields = {"name": "Mallory", "message": "no token"}

    no_field = client.post_form("/contact/", fields)
    assert no_field.status == 403, explain(site, no_field)
    assert b"CSRF verification failed" in no_field.body

    client.cookies.clear()
    no_cookie = client.post_form("/contact/", fields)
    assert no_cookie.status == 403, explain(site, no_cookie)
    assert b"CSRF verification failed" in no_cookie.body


def test_admin_login_then_index_with_session_cookie(site: ServedSite) -> None:
    client = Client(site.port)
    anonymous = client.get("/admin/")
    assert anonymous.status == 302
    assert anonymous.header("Location") == "/admin/login/?next=/admin/"

    login_page = client.get("/admin/login/?next=/admin/")
    assert login_page.status == 200
    logged_in = client.post_form(
        "/admin/login/?next=/admin/",
        {
            "csrfmiddlewaretoken": csrf_token(login_page.body),
            "username": SUPERUSER,
            "password": SUPERUSER_PASSWORD,
            "next": "/admin/",
        },
    )
    assert logged_in.status == 302, explain(site, logged_in)
    assert logged_in.header("Location") == "/admin/"
    assert "sessionid" in client.cookies

    index = client.get("/admin/")
    assert index.status == 200
    assert b"Site administration" in index.body
    assert f"<strong>{SUPERUSER}</strong>".encode() in index.body  # "Welcome, ada."
    # A browser does all of this on one keep-alive connection, the POST with its body included.
    assert client.connections_opened == 1


def test_multipart_upload_spooled_to_disk(site: ServedSite) -> None:
    content = os.urandom(UPLOAD_SIZE)
    boundary = "switchboard-boundary-7MA4YWxkTrZu0gW"
    body = b"".join(
        [
            f'--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\n'.encode(),
            b"ten megabytes\r\n",
            f"--{boundary}\r\n".encode(),
            b'Content-Disposition: form-data; name="file"; filename="big.bin"\r\n',
            b"Content-Type: application/octet-stream\r\n\r\n",
            content,
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )
    client = Client(site.port)
    response = client.request(
        "POST",
        "/upload/",
        body=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status == 200, explain(site, response)
    assert json.loads(response.body) == {
        "name": "big.bin",
        "size": UPLOAD_SIZE,
        "sha256": hashlib.sha256(content).hexdigest(),
        "handler_class": "TemporaryUploadedFile",
        "temporary_file_exists": True,
        "note": "ten megabytes",
    }


def test_chunked_upload_read_via_request_body(site: ServedSite) -> None:
    # RFC 9112 section 7.1: no Content-Length; uneven chunk sizes, one with a chunk extension
    # (which a recipient must ignore when it doesn't recognise it, section 7.1.1). The total
    # stays under DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB), which Django applies to request.body.
    sizes = [1, 1000, 65536, 300_000, 17, 1_000_000, 900_000]
    chunks = [os.urandom(size) for size in sizes]
    head = (
        f"POST /raw-body/ HTTP/1.1\r\nHost: 127.0.0.1:{site.port}\r\n"
        "Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    framed = [b"%x%s\r\n%s\r\n" % (len(c), b";note=x" if i == 1 else b"", c)
              for i, c in enumerate(chunks)]  # fmt: skip
    raw = raw_exchange(site.port, head, *framed, b"0\r\n\r\n")

    status, headers, rest = split_head(raw)
    assert status == 200, f"status {status}; server log:\n{site.log()}"
    assert int(headers["content-length"]) == len(rest)
    whole = b"".join(chunks)
    assert json.loads(rest) == {
        "size": len(whole),
        "sha256": hashlib.sha256(whole).hexdigest(),
        "content_length_header": None,
        "transfer_encoding_header": "chunked",
    }


def test_streaming_response_is_sent_chunk_by_chunk(site: ServedSite) -> None:
    raw = raw_exchange(
        site.port, b"GET /stream/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    status, headers, rest = split_head(raw)
    assert status == 200
    # No length known in advance: chunked framing (RFC 9112 section 6.1), no Content-Length.
    assert headers["transfer-encoding"] == "chunked"
    assert "content-length" not in headers
    chunks, after = decode_chunked(rest)
    # Each part the view yielded went out as it came, one chunk each: nothing buffered.
    assert chunks == [b"first part;", b"second, a little longer;", b"third and last"]
    assert after == b""


def test_file_response_bytes_and_content_length(site: ServedSite) -> None:
    expected = (site.site_dir / "download.bin").read_bytes()
    response = Client(site.port).get("/download/")
    assert response.status == 200
    assert response.header("Content-Length") == str(DOWNLOAD_SIZE)
    assert response.header("Transfer-Encoding") is None
    assert response.header("Content-Disposition") == 'attachment; filename="download.bin"'
    assert len(response.body) == DOWNLOAD_SIZE
    assert response.body == expected


def test_async_view_runs_on_the_event_loop_with_async_orm(site: ServedSite) -> None:
    response = Client(site.port).get("/async/")
    assert response.status == 200, explain(site, response)
    assert json.loads(response.body) == {
        "running_loop": True,
        "in_task": True,
        "users": 1,  # the superuser the bootstrap created, counted with the async ORM
        "method": "GET",
    }


def test_head_has_get_headers_and_no_body(site: ServedSite) -> None:
    # HEAD pipelined before a GET on one connection: a single stray body byte after the HEAD
    # response would show up in front of the GET's status line (RFC 9110 section 9.3.2).
    host = f"Host: 127.0.0.1:{site.port}\r\n".encode()
    raw = raw_exchange(
        site.port,
        b"HEAD /hello/ HTTP/1.1\r\n" + host + b"\r\n"
        b"GET /hello/ HTTP/1.1\r\n" + host + b"Connection: close\r\n\r\n",
    )
    head_status, head_headers, rest = split_head(raw)
    assert rest.startswith(b"HTTP/1.1 200 "), f"bytes after the HEAD response: {rest[:80]!r}"
    get_status, get_headers, get_body = split_head(rest)

    assert head_status == get_status == 200
    assert get_body == b"Hello from Django over ASGI.\n"
    assert get_headers["content-length"] == str(len(get_body))
    for name in ("content-length", "content-type", "x-hello", "x-frame-options"):
        assert head_headers[name] == get_headers[name], name


def test_not_found_renders_the_sites_404_page(site: ServedSite) -> None:
    response = Client(site.port).get("/no/such/page/")
    assert response.status == 404
    assert response.header("Content-Type") == "text/html; charset=utf-8"
    assert b"<h1>Nothing at /no/such/page/</h1>" in response.body


def test_session_counter_persists_across_requests(site: ServedSite) -> None:
    client = Client(site.port)
    assert json.loads(client.get("/counter/").body) == {"count": 1}
    assert "sessionid" in client.cookies
    client.close()  # a new connection: the count lives in the session store, not the socket
    assert json.loads(client.get("/counter/").body) == {"count": 2}
    assert client.connections_opened == 2

    stranger = Client(site.port)
    assert json.loads(stranger.get("/counter/").body) == {"count": 1}
