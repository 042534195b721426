"""TLS: the ``--ssl-*`` options, ALPN between HTTP/2 and HTTP/1.1, the ASGI ``tls`` extension
(HTTP and WebSocket scopes), mutual TLS and certificate reload on SIGHUP."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import ssl
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.server.h2_apps import app
from tests.server.h2_support import Certs, make_certs, peer_serial, reissue_server_cert
from tests.server.serve_process import Serving, free_port, run_serve


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    return make_certs(tmp_path)


def tls_options(certs: Certs, **extra: Any) -> dict[str, Any]:
    return {"ssl_certfile": str(certs.server_cert), "ssl_keyfile": str(certs.server_key), **extra}


async def test_https_http11_scope_and_tls_extension(running_server: Any, certs: Certs) -> None:
    async with running_server(app, **tls_options(certs)) as (_, port):
        async with httpx.AsyncClient(verify=certs.client_context(), http2=False) as client:
            response = await client.get(f"https://localhost:{port}/scope")
    scope = response.json()
    assert (scope["http_version"], scope["scheme"]) == ("1.1", "https")
    tls = scope["tls"]
    # ASGI TLS extension: the server's own certificate as PEM, versions and suites as the
    # 16-bit IANA numbers.
    assert tls["server_cert"].strip() == certs.server_cert.read_text().strip()
    assert tls["tls_version"] == 0x0304
    assert tls["cipher_suite"] in (0x1301, 0x1302, 0x1303)
    assert tls["client_cert_chain"] == [] and tls["client_cert_name"] is None
    assert tls["client_cert_error"] is None


async def test_alpn_chooses_http2_when_offered(running_server: Any, certs: Certs) -> None:
    async with running_server(app, **tls_options(certs)) as (_, port):
        async with httpx.AsyncClient(verify=certs.client_context(), http2=True) as client:
            response = await client.get(f"https://localhost:{port}/scope")
    assert response.http_version == "HTTP/2"
    scope = response.json()
    assert (scope["http_version"], scope["scheme"]) == ("2", "https")
    assert scope["tls"]["tls_version"] == 0x0304


async def test_mutual_tls_reports_the_client_certificate(running_server: Any, certs: Certs) -> None:
    options = tls_options(certs, ssl_ca_certs=str(certs.ca), ssl_cert_reqs=ssl.CERT_REQUIRED)
    async with running_server(app, **options) as (_, port):
        verify = certs.client_context(with_client_cert=True)
        async with httpx.AsyncClient(verify=verify, http2=True) as client:
            response = await client.get(f"https://localhost:{port}/scope")
        tls = response.json()["tls"]
        assert len(tls["client_cert_chain"]) == 1
        sent = ssl.PEM_cert_to_DER_cert(certs.client_cert.read_text())
        assert ssl.PEM_cert_to_DER_cert(tls["client_cert_chain"][0]) == sent
        # RFC 4514: most specific RDN first.
        assert tls["client_cert_name"] == "CN=test client,O=Switchboard tests"
        # Without a certificate, no request gets through.
        async with httpx.AsyncClient(verify=certs.client_context(), http2=True) as client:
            with pytest.raises((httpx.HTTPError, ssl.SSLError)):
                await client.get(f"https://localhost:{port}/scope")


async def test_wss_scope_has_the_tls_extension(running_server: Any, certs: Certs) -> None:
    async with running_server(app, **tls_options(certs)) as (_, port):
        async with connect(f"wss://localhost:{port}/ws", ssl=certs.client_context()) as ws:
            scope = json.loads(await ws.recv())
    assert (scope["type"], scope["scheme"]) == ("websocket", "wss")
    assert scope["tls"]["tls_version"] == 0x0304


def test_sighup_reloads_the_certificate(tmp_path: Path, certs: Certs) -> None:
    port = free_port()
    serving = Serving(
        tmp_path / "serve.log",
        "tests.server.h2_apps:app",
        "--port", str(port),
        "--ssl-certfile", str(certs.server_cert),
        "--ssl-keyfile", str(certs.server_key),
    )  # fmt: skip
    try:
        serving.wait_for("Listening on https://127.0.0.1")
        first = peer_serial(port, certs)
        renewed = reissue_server_cert(certs)
        assert peer_serial(port, certs) == first  # nothing changes until told
        serving.process.send_signal(signal.SIGHUP)
        serving.wait_for("TLS certificates reloaded")
        assert peer_serial(port, certs) == renewed.serial_number
        # Broken files on the next reload: logged, the working certificate kept.
        certs.server_key.write_text("not a key")
        serving.process.send_signal(signal.SIGHUP)
        serving.wait_for("TLS certificates not reloaded")
        assert peer_serial(port, certs) == renewed.serial_number
        assert serving.stop() == 0
    finally:
        serving.close()


def test_unusable_certificate_files_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    result = run_serve(
        "serve", "tests.server.h2_apps:app", "--port", str(free_port()),
        "--ssl-certfile", str(missing),
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "Cannot set up TLS" in result.stderr


async def test_handshakes_do_not_block_plain_clients(running_server: Any, certs: Certs) -> None:
    """A client that opens TCP and never says hello holds no one else up."""
    async with running_server(app, **tls_options(certs)) as (host, port):
        _, idle = await asyncio.open_connection(host, port)
        try:
            async with httpx.AsyncClient(verify=certs.client_context()) as client:
                response = await client.get(f"https://localhost:{port}/scope")
            assert response.status_code == 200
        finally:
            idle.close()


# -- handshakes: a deadline, and a place under --limit-concurrency -----------------------------


def serve_tls(tmp_path: Path, certs: Certs, *options: str) -> tuple[Serving, int]:
    port = free_port()
    serving = Serving(
        tmp_path / "serve.log",
        "tests.server.h2_apps:app",
        "--port", str(port),
        "--ssl-certfile", str(certs.server_cert),
        "--ssl-keyfile", str(certs.server_key),
        *options,
    )  # fmt: skip
    serving.wait_for("Listening on https://127.0.0.1")
    return serving, port


def https_status(port: int, certs: Certs) -> int:
    """The status of a GET over TLS (HTTP/1.1 by ALPN); raises if the connection is refused."""
    ctx = certs.client_context(alpn=["http/1.1"])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"GET /scope HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            head = b""
            while b"\r\n" not in head:
                data = tls.recv(4096)
                assert data, "closed without a response"
                head += data
    return int(head.split(b" ", 2)[1])


def eventually_ok(port: int, certs: Certs, within: float) -> float:
    """Seconds until a GET over TLS gets 200 (the connections a test closed may take the server
    a moment to see); fails after ``within``."""
    started = time.monotonic()
    while True:
        try:
            if https_status(port, certs) == 200:
                return time.monotonic() - started
        except (OSError, AssertionError):
            pass
        assert time.monotonic() - started < within, f"no 200 within {within}s"
        time.sleep(0.05)


def still_open(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.setblocking(True)


def stalled(port: int) -> socket.socket:
    """A TCP connection that never says hello, once the server holds it (a connection that a
    test closed just before may still count for a moment, so a refused one is opened again)."""
    for _ in range(20):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        time.sleep(0.2)  # accepted by now
        if still_open(sock):
            return sock
        sock.close()
    raise AssertionError("the server refuses every connection")


def client_hello(certs: Certs) -> bytes:
    """The first flight of a real TLS client."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = certs.client_context().wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def test_a_stalled_tls_handshake_is_closed_after_ssl_handshake_timeout(
    tmp_path: Path, certs: Certs
) -> None:
    """A client that opens TCP and never finishes its handshake (silent, or stopping half way
    through its ClientHello) was held for asyncio's 60 s. ``--ssl-handshake-timeout`` bounds
    it, default 10 s (hypercorn has the same setting, ``ssl_handshake_timeout``, at 60 s;
    Kestrel's ``HandshakeTimeout`` defaults to 10 s; RFC 8446 sets no time)."""
    serving, port = serve_tls(tmp_path, certs, "--ssl-handshake-timeout", "0.5")
    try:
        silent = socket.create_connection(("127.0.0.1", port), timeout=10)
        halfway = socket.create_connection(("127.0.0.1", port), timeout=10)
        halfway.sendall(client_hello(certs)[:20])
        started = time.monotonic()
        for sock in (silent, halfway):
            with sock:
                try:
                    assert sock.recv(4096) == b""
                except ConnectionResetError:
                    pass
        waited = time.monotonic() - started
        assert 0.3 < waited < 3, waited
        assert eventually_ok(port, certs, within=2) < 2  # and the server goes on serving
        assert serving.stop() == 0
    finally:
        serving.close()
    assert "Traceback" not in serving.stderr, serving.stderr


def test_connections_in_their_tls_handshake_count_towards_limit_concurrency(
    tmp_path: Path, certs: Certs
) -> None:
    """An open connection is counted from the moment it is accepted, handshake or not: two
    stalled handshakes under ``--limit-concurrency 2`` leave no room, so the next connection
    is closed at once (a 503 would first cost the handshake that the limit is there to spare).
    Each stalled one gives its place back as soon as it ends: when the client leaves, or when
    its handshake fails, not at the handshake timeout. Before, a connection counted only from
    the end of its handshake, as in uvicorn, so stalled handshakes were never refused."""
    serving, port = serve_tls(tmp_path, certs, "--limit-concurrency", "2")
    try:
        first, second = stalled(port), stalled(port)
        with pytest.raises((ssl.SSLError, OSError)):
            https_status(port, certs)
        first.close()  # the client leaves: its place is free again
        assert eventually_ok(port, certs, within=2) < 2
        third = stalled(port)
        with pytest.raises((ssl.SSLError, OSError)):
            https_status(port, certs)
        second.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # not TLS: the handshake fails
        assert eventually_ok(port, certs, within=2) < 2
        second.close()
        third.close()
        assert serving.stop() == 0
    finally:
        serving.close()
    assert "Traceback" not in serving.stderr, serving.stderr
