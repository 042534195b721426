"""HTTP/2 end to end (RFC 9113): real clients (curl, httpx, a raw ``h2`` client) against the
real server on a loopback port."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path
from typing import Any

import h2.events
import h2.settings
import httpx
import pytest

from switchboard.server import Config, Server
from tests.server.h2_apps import app
from tests.server.h2_support import Certs, RawH2, make_certs
from tests.server.http_apps import read_body


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


async def curl(*args: str) -> tuple[str, str]:
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sS", "--max-time", "20", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode(), err.decode()


async def test_curl_h2c_prior_knowledge(running_server: Any) -> None:
    """h2c with prior knowledge (RFC 9113 section 3.3): the preface opens HTTP/2 in the clear;
    the scope is ASGI's HTTP/2 view (``:authority`` first, as ``host``)."""
    async with running_server(app) as (host, port):
        out, _ = await curl(
            "--http2-prior-knowledge", "-w", "\n%{http_version}", f"http://{host}:{port}/scope?a=1"
        )
        body, version = out.rsplit("\n", 1)
        assert version == "2"
        scope = json.loads(body)
        assert scope["http_version"] == "2"
        assert scope["scheme"] == "http"
        assert scope["method"] == "GET"
        assert (scope["path"], scope["query_string"]) == ("/scope", "a=1")
        assert scope["headers"][0] == ["host", f"{host}:{port}"]
        assert not any(name.startswith(":") for name, _ in scope["headers"])
        assert "http.response.trailers" in scope["extensions"]
        assert "tls" not in scope["extensions"]
        # The same port still speaks HTTP/1.1 to everyone else.
        out, _ = await curl("--http1.1", "-w", "\n%{http_version}", f"http://{host}:{port}/scope")
        assert out.rsplit("\n", 1)[1] == "1.1"


async def test_curl_http2_over_tls_by_alpn(running_server: Any, certs: Certs) -> None:
    async with running_server(
        app, ssl_certfile=str(certs.server_cert), ssl_keyfile=str(certs.server_key)
    ) as (_, port):
        out, _ = await curl(
            "--http2", "--cacert", str(certs.ca), "-w", "\n%{http_version}",
            f"https://localhost:{port}/scope",
        )  # fmt: skip
        body, version = out.rsplit("\n", 1)
        assert version == "2"
        scope = json.loads(body)
        assert (scope["http_version"], scope["scheme"]) == ("2", "https")
        assert scope["tls"]["tls_version"] in (0x0303, 0x0304)
        assert isinstance(scope["tls"]["cipher_suite"], int)


async def test_httpx_concurrent_streams_on_one_connection(running_server: Any) -> None:
    async with running_server(app) as (host, port):
        async with httpx.AsyncClient(http1=False, http2=True) as client:
            responses = await asyncio.gather(
                *(client.get(f"http://{host}:{port}/scope?{i}") for i in range(60))
            )
        scopes = [r.json() for r in responses]
        assert all(r.http_version == "HTTP/2" and r.status_code == 200 for r in responses)
        assert sorted(int(s["query_string"]) for s in scopes) == list(range(60))
        assert len({s["client_port"] for s in scopes}) == 1  # one TCP connection
        assert responses[0].headers["content-type"] == "application/json"
        # Connection-specific fields are not HTTP/2 fields (RFC 9113 section 8.2.2).
        assert "connection" not in responses[0].headers


async def test_large_bodies_both_ways_need_window_updates(running_server: Any) -> None:
    """3 MB each way: far beyond the 64 KiB initial windows, so both sides must give window
    back as they read (RFC 9113 section 5.2)."""
    payload = bytes(range(256)) * (3 * 4096)
    async with running_server(app) as (host, port):
        async with httpx.AsyncClient(http1=False, http2=True, timeout=30) as client:
            echoed = await client.post(f"http://{host}:{port}/echo", content=payload)
            big = await client.get(f"http://{host}:{port}/big?3000000")
    assert echoed.content == payload
    assert len(big.content) == 3000000


class _Progress:
    """Sends ``size`` bytes in 16 KiB messages, counting what ``send`` has accepted."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.sent = 0
        self.done = asyncio.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while self.sent < self.size:
            self.sent += 16384
            await send({"type": "http.response.body", "body": b"y" * 16384, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        self.done.set()


async def test_a_client_that_does_not_read_holds_the_app_back(running_server: Any) -> None:
    """Back-pressure to the app: with the client's windows closed, ``send`` waits."""
    progress = _Progress(4 << 20)
    async with running_server(progress) as (_, port):
        client = await asyncio.to_thread(RawH2, port)
        client.auto_ack = False
        try:
            sid = await asyncio.to_thread(client.request, "/")
            await asyncio.to_thread(client.read_until, lambda ev: False, 1.5)
            # Only the client's windows' worth (64 KiB) went out, plus what sits in one send.
            assert progress.sent <= 65535 + 2 * 16384, progress.sent
            assert not progress.done.is_set()
            headers, body = await asyncio.to_thread(client.response, sid, 60)
            await asyncio.wait_for(progress.done.wait(), 30)
            assert len(body) == 4 << 20
        finally:
            client.close()


async def test_request_body_window_comes_back_only_as_the_app_reads(
    running_server: Any,
) -> None:
    release = asyncio.Event()
    got = []

    async def reads_late(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await release.wait()
        got.append(len(await read_body(receive)))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async with running_server(reads_late) as (_, port):
        client = await asyncio.to_thread(RawH2, port)
        try:
            sid = await asyncio.to_thread(client.request, "/", method="POST", end=False)
            window = client.conn.local_flow_control_window(sid)
            for _ in range(window // 16384):
                client.conn.send_data(sid, b"z" * 16384)
            client.conn.send_data(sid, b"z" * (window % 16384))
            await asyncio.to_thread(client.flush)
            await asyncio.to_thread(client.read_until, lambda ev: False, 1.0)
            # Nothing was read by the app: no WINDOW_UPDATE for the stream.
            assert client.conn.local_flow_control_window(sid) == 0
            release.set()
            await asyncio.to_thread(client.read_until, lambda ev: False, 1.0)
            assert client.conn.local_flow_control_window(sid) > 0
            client.conn.end_stream(sid)
            await asyncio.to_thread(client.flush)
            headers, _ = await asyncio.to_thread(client.response, sid)
            assert headers[b":status"] == b"204"
            assert got == [window]
        finally:
            client.close()


async def test_response_trailers(running_server: Any) -> None:
    """Trailers are a HEADERS frame that ends the stream (RFC 9113 section 8.1); framing
    fields cannot be trailers (RFC 9110 section 6.5.1)."""
    async with running_server(app) as (_, port):
        client = await asyncio.to_thread(RawH2, port)
        try:
            sid = await asyncio.to_thread(client.request, "/trailers")
            headers, body = await asyncio.to_thread(client.response, sid)
            trailers = [e for e in client.events if isinstance(e, h2.events.TrailersReceived)]
            assert headers[b":status"] == b"200"
            assert body == b"data"
            assert len(trailers) == 1
            assert dict(trailers[0].headers) == {b"x-checksum": b"abc"}
        finally:
            client.close()


async def test_request_trailers_end_the_body(running_server: Any) -> None:
    async with running_server(app) as (_, port):
        client = await asyncio.to_thread(RawH2, port)
        try:
            sid = await asyncio.to_thread(client.request, "/echo", method="POST", end=False)
            client.conn.send_data(sid, b"abc")
            client.conn.send_headers(sid, [(b"x-sum", b"1")], end_stream=True)
            await asyncio.to_thread(client.flush)
            headers, body = await asyncio.to_thread(client.response, sid)
            assert (headers[b":status"], body) == (b"200", b"abc")
        finally:
            client.close()


async def test_a_crashing_app_gets_500_and_other_streams_go_on(running_server: Any) -> None:
    async with running_server(app) as (host, port):
        async with httpx.AsyncClient(http1=False, http2=True) as client:
            crash, fine = await asyncio.gather(
                client.get(f"http://{host}:{port}/crash"), client.get(f"http://{host}:{port}/x")
            )
    assert crash.status_code == 500
    assert fine.status_code == 200


async def test_a_body_announced_over_the_limit_is_refused_before_the_app(
    running_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # As on HTTP/1.1: 413 at the head, then RST_STREAM NO_ERROR so the client stops sending
    # (RFC 9113 section 8.1). Access lines in the one format (the size is the body's bytes on
    # HTTP/2), refused requests with "-" for the time.
    caplog.set_level(logging.INFO, logger="switchboard.server.access")
    seen = []

    async def recording(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            seen.append(scope["path"])
        await app(scope, receive, send)

    async with running_server(recording, max_body_size=1000) as (host, port):
        async with httpx.AsyncClient(http1=False, http2=True) as client:
            big = await client.post(f"http://{host}:{port}/big", content=b"x" * 5000)
            ok = await client.post(f"http://{host}:{port}/ok", content=b"x" * 10)
    assert big.status_code == 413 and ok.status_code == 200
    assert big.http_version == "HTTP/2" and seen == ["/ok"]
    lines = [r.getMessage() for r in caplog.records if r.name == "switchboard.server.access"]
    client = r"127\.0\.0\.1:\d+ - "
    assert any(re.fullmatch(client + r'"POST /big HTTP/2" 413 24 -', line) for line in lines)
    assert any(
        re.fullmatch(client + rf'"POST /ok HTTP/2" 200 {len(ok.content)} \d+\.\dms', line)
        for line in lines
    ), lines


async def test_graceful_shutdown_sends_goaway_and_finishes_streams(tmp_path: Path) -> None:
    server = Server(Config(app=app, port=0, timeout_graceful_shutdown=10))
    await server.startup()
    port = server.sockets[0].getsockname()[1]
    client = await asyncio.to_thread(RawH2, port)
    try:
        # curl's stream is in flight when the shutdown starts; it still gets its response.
        in_flight = asyncio.create_task(
            curl("--http2-prior-knowledge", "-w", "%{http_code}", f"http://127.0.0.1:{port}/slow?1")
        )
        sid = await asyncio.to_thread(client.request, "/slow?1")
        await asyncio.sleep(0.4)
        stopping = asyncio.create_task(server.shutdown())
        await asyncio.to_thread(client.read_until, lambda ev: client.goaway() is not None)
        goaway = client.goaway()
        # GOAWAY names the last stream it will still serve (RFC 9113 section 6.8).
        assert goaway is not None and goaway.error_code == 0
        assert goaway.last_stream_id == sid
        out, _ = await asyncio.wait_for(in_flight, 15)
        assert out.endswith("200")
        assert await asyncio.to_thread(client.wait_closed, 10)
        await asyncio.wait_for(stopping, 15)
    finally:
        client.close()


async def test_max_concurrent_streams_and_connect_protocol_are_advertised(
    running_server: Any,
) -> None:
    async with running_server(app, h2_max_concurrent_streams=7) as (_, port):
        client = await asyncio.to_thread(RawH2, port)
        try:
            events = await asyncio.to_thread(
                client.read_until,
                lambda ev: any(isinstance(e, h2.events.RemoteSettingsChanged) for e in ev),
            )
            changed = next(e for e in events if isinstance(e, h2.events.RemoteSettingsChanged))
            settings = {k: v.new_value for k, v in changed.changed_settings.items()}
            assert settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] == 7
            assert settings[h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL] == 1
            assert settings[h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE] == 16384
        finally:
            client.close()


async def test_http2_off_leaves_http11_only(running_server: Any) -> None:
    async with running_server(app, http2=False) as (host, port):
        proc = await asyncio.create_subprocess_exec(
            "curl", "-sS", "--http2-prior-knowledge", f"http://{host}:{port}/",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        await proc.communicate()
        assert proc.returncode != 0
