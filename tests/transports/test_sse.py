"""SSE sessions over the real server: accept, frames, heartbeat, close, refusals, drops."""

from __future__ import annotations

import json

from django.test import override_settings
from prometheus_client import generate_latest

from switchboard.metrics.collectors import build_registry
from switchboard.routing import ProtocolTypeRouter
from switchboard.transports.stats import stats
from tests.support.serving import serving
from tests.transports import site
from tests.transports.clients import post, sse


async def test_frames_both_ways_and_the_app_closing(served):
    async with sse(served.client, served.url()) as stream:
        assert stream.response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert stream.response.headers["cache-control"] == "no-store"
        assert stream.response.headers["x-accel-buffering"] == "no"
        response = await post(served.client, served.url(), "sse", stream.token, "hi", "two\nlines")
        assert response.status_code == 204
        assert await stream.text() == "echo:hi"
        assert await stream.text() == "echo:two\nlines"  # one event, two data: lines
        await post(served.client, served.url(), "sse", stream.token, "bytes", "event", "scope")
        binary = await stream.next()
        assert binary == {"event": "sb.binary", "data": "AP8="}
        assert await stream.next() == {"id": "e:1", "event": "news", "data": "a\nb"}
        scope = json.loads(await stream.text())
        assert scope == {
            "transport": "sse",
            "query": "x=1",
            "scheme": "ws",
            "origin": f"http://{served.address}",  # added: a same-origin GET has none
            "last_event_id": None,
        }
        await post(served.client, served.url(), "sse", stream.token, "close")
        assert await stream.next() == {
            "event": "sb.close",
            "data": '{"code": 4000, "reason": "bye"}',
        }
        assert await served.event("disconnect") == 4000
        try:
            extra = await stream.next()
        except EOFError:
            extra = None
        assert extra is None
    await served.no_sessions()
    response = await post(served.client, served.url(), "sse", stream.token, "late")
    assert response.status_code == 410


@override_settings(SWITCHBOARD_TRANSPORTS={"HEARTBEAT": 0.2})
async def test_heartbeat_after_silence(served):
    async with sse(served.client, served.url()) as stream:
        assert await stream.next() == {"comment": "hb"}
        assert await stream.next() == {"comment": "hb"}
        await post(served.client, served.url(), "sse", stream.token, "x")
        assert await stream.text() == "echo:x"


async def test_client_drop_disconnects_the_app_with_1006_and_frees_the_session(served):
    opened = stats.sessions_open["sse"]
    async with sse(served.client, served.url()) as stream:
        assert served.sessions()
        assert stats.sessions_open["sse"] == opened + 1
    assert await served.event("disconnect") == 1006
    await served.no_sessions()
    assert stats.sessions_open["sse"] == opened
    response = await post(served.client, served.url(), "sse", stream.token, "x")
    assert response.status_code == 410


async def test_refusals(served):
    async with served.client.stream("GET", served.url("deny") + "&sb_transport=sse") as response:
        assert response.status_code == 403
    async with served.client.stream("GET", served.url("nope") + "&sb_transport=sse") as response:
        assert response.status_code == 404
    async with served.client.stream("GET", served.url("teapot") + "&sb_transport=sse") as response:
        assert response.status_code == 418
        assert await response.aread() == b"short and stout"
    await served.no_sessions()


async def test_cross_origin_stream_is_refused_same_origin_passes(served):
    url = served.url() + "&sb_transport=sse"
    evil = {"Origin": "http://evil.example"}
    async with served.client.stream("GET", url, headers=evil) as response:
        assert response.status_code == 403
    # No Origin, but the browser says the request came from another site: not made up.
    cross = {"Sec-Fetch-Site": "cross-site"}
    async with served.client.stream("GET", url, headers=cross) as response:
        assert response.status_code == 403
    same = {"Sec-Fetch-Site": "same-origin", "Last-Event-ID": "7:3"}
    async with sse(served.client, served.url(), headers=same) as stream:
        await post(served.client, served.url(), "sse", stream.token, "scope")
        assert json.loads(await stream.text())["last_event_id"] == "7:3"
    await served.no_sessions()


async def test_plain_http_and_disabled_transports_go_to_the_http_app(served):
    response = await served.client.get(served.base + "/page/?a=1")
    assert response.text == "http"
    with override_settings(SWITCHBOARD_TRANSPORTS={"ENABLED": ["poll"]}):
        response = await served.client.get(served.url() + "&sb_transport=sse")
        assert (response.status_code, response.text) == (200, "http")
    # A router without a websocket application has no sessions to offer.
    async with serving(ProtocolTypeRouter({"http": site.http_app})) as address:
        response = await served.client.get(f"http://{address}/ws/echo/?sb_transport=sse")
        assert (response.status_code, response.text) == (200, "http")


async def test_post_errors(served):
    async with sse(served.client, served.url()) as stream:
        url = f"{served.url()}&sb_transport=sse&sb_session={stream.token}"
        bad = await served.client.post(url, content=b"{nope")
        assert bad.status_code == 400 and "invalid JSON" in bad.json()["error"]
        shape = await served.client.post(url, json={"frames": [1]})
        assert shape.status_code == 400
        with override_settings(SWITCHBOARD_TRANSPORTS={"MAX_POST_BYTES": 100}):
            big = await served.client.post(url, json={"frames": ["x" * 200]})
            assert big.status_code == 413
        forged = await served.client.post(url.replace(stream.token, stream.token + "x"), json={})
        assert forged.status_code == 410
        ok = await served.client.post(url, json={"frames": [{"b": "AAE="}]})
        assert ok.status_code == 204
        assert await stream.text() == "got bytes:0001"
        assert (await served.client.post(url, json={"close": True})).status_code == 204
        assert await served.event("disconnect") == 1000
    await served.no_sessions()


async def test_overflow_ends_the_session_with_1013(served):
    before = stats.overflows["sse"]
    limits = {"MAX_BUFFERED_FRAMES": 50}
    with override_settings(SWITCHBOARD_TRANSPORTS=limits):
        async with sse(served.client, served.url()) as stream:
            # 200 frames in one go: the stream writer cannot run in between.
            await post(served.client, served.url(), "sse", stream.token, "flood 200")
            event = await stream.next()
            while event.get("event") == "message":
                event = await stream.next()
            assert event == {
                "event": "sb.close",
                "data": '{"code": 1013, "reason": "buffer overflow"}',
            }
            # The app's sends never waited for the client: it got through all 200 at once.
            assert await served.event("flooded") == 200
            assert await served.event("disconnect") == 1013
    assert stats.overflows["sse"] == before + 1
    await served.no_sessions()
    scraped = generate_latest(build_registry(lambda: [])).decode()
    assert f'switchboard_transport_overflows_total{{transport="sse"}} {before + 1}.0' in scraped
    assert 'switchboard_transport_sessions{transport="sse"} 0.0' in scraped
    assert 'switchboard_transport_frames_total{direction="out",transport="sse"}' in scraped


async def test_server_shutdown_ends_streams_and_held_polls_with_1001_at_once():
    """Like a WebSocket (closed with 1001 when the server stops), an SSE stream gets sb.close
    1001 and a held poll its answer with "close" as soon as a graceful shutdown begins, so the
    clients reconnect elsewhere instead of holding the shutdown until its timeout."""
    import asyncio
    import time

    import httpx

    from switchboard.server import Config, Server
    from switchboard.transports import hosts
    from tests.transports.clients import Poller

    site.Events.queue = asyncio.Queue()
    config = Config(
        app=site.application, host="127.0.0.1", port=0, access_log=False,
        timeout_graceful_shutdown=20.0,
    )  # fmt: skip
    server = Server(config)
    await server.startup()
    address = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    url = f"http://{address}/ws/echo/?x=1"
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            poller = Poller(client, url)
            await poller.open()
            async with sse(client, url) as stream:
                held = asyncio.ensure_future(poller.poll(timeout=30))
                await asyncio.sleep(0.2)  # the poll is held by the server now
                started = time.monotonic()
                stopping = asyncio.ensure_future(server.shutdown())
                assert await stream.next() == {
                    "event": "sb.close",
                    "data": '{"code": 1001, "reason": "server shutting down"}',
                }
                answer = await held
                assert answer.json()["close"] == {"code": 1001, "reason": "server shutting down"}
            await stopping
            assert time.monotonic() - started < 5, "the shutdown waited for the sessions"
        codes = {await site.Events.queue.get() for _ in range(2)}
        assert codes == {("disconnect", 1001)}, codes
    finally:
        site.Events.queue = None
        host = hosts._hosts.pop(asyncio.get_running_loop(), None)
        if host is not None:
            host.close()
