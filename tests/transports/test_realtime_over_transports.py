"""The realtime protocol (RealtimeConsumer: subscribe, publish, recover) unchanged over SSE
and long-polling, and a stream over HTTP/2."""

from __future__ import annotations

import json

import httpx

from switchboard.realtime import publish
from tests.transports.clients import Poller, post, sse


def _sub(**fields) -> str:
    return json.dumps({"sb": "sub", "topic": "room", **fields})


async def test_subscribe_publish_recover_over_sse(served):
    url = served.url("room")
    async with sse(served.client, url) as stream:
        await post(served.client, url, "sse", stream.token, _sub())
        subscribed = json.loads(await stream.text())
        assert subscribed["sb"] == "subscribed"
        await post(served.client, url, "sse", stream.token, json.dumps({"publish": {"n": 1}}))
        frames = [json.loads(await stream.text()) for _ in range(2)]
        pub = next(f for f in frames if f.get("sb") == "pub")
        assert pub["data"] == {"n": 1} and {"published": pub["offset"]} in frames
    for n in range(2, 5):  # published while the client is away
        await publish("room", {"n": n})
    async with sse(served.client, url) as stream:
        await post(
            served.client, url, "sse", stream.token, _sub(epoch=pub["epoch"], offset=pub["offset"])
        )
        again = json.loads(await stream.text())
        assert again["recovered"] is True
        missed = [json.loads(await stream.text()) for _ in range(3)]
        assert [m["data"]["n"] for m in missed] == [2, 3, 4]
    await served.no_sessions()


async def test_subscribe_publish_recover_over_poll(served):
    url = served.url("room")
    poller = Poller(served.client, url)
    await poller.open()
    await poller.send(_sub(history=0))
    [subscribed] = [json.loads(f) for f in await poller.frames(1)]
    assert subscribed["sb"] == "subscribed"
    await publish("room", {"n": 1})
    [pub] = [json.loads(f) for f in await poller.frames(1)]
    assert pub["sb"] == "pub" and pub["data"] == {"n": 1}
    await poller.send(close=True)
    for n in range(2, 4):
        await publish("room", {"n": n})
    again = Poller(served.client, url)
    await again.open()
    await again.send(_sub(epoch=pub["epoch"], offset=pub["offset"]))
    frames = [json.loads(f) for f in await again.frames(3)]
    assert frames[0]["recovered"] is True
    assert [f["data"]["n"] for f in frames[1:]] == [2, 3]
    await again.send(close=True)
    await served.no_sessions()


async def test_sse_over_http2(served):
    async with httpx.AsyncClient(http1=False, http2=True, timeout=10) as client:
        async with sse(client, served.url()) as stream:
            assert stream.response.http_version == "HTTP/2"
            assert (await post(client, served.url(), "sse", stream.token, "h2")).status_code == 204
            assert await stream.text() == "echo:h2"
            await post(client, served.url(), "sse", stream.token, "close")
            assert (await stream.next())["event"] == "sb.close"
    await served.no_sessions()


async def test_a_full_recovery_fits_the_session_buffer_on_both_transports(served):
    """A client away for 1000 publications (max_recovery: the most one recovery replays) gets
    them all back over either transport: the replay is one burst of sends, which the session's
    bounded buffer must hold (a long-poll client takes it at its next poll) rather than
    overflow with 1013, which the client would meet again at every reconnect until the gap
    became a resync."""
    url = served.url("room")
    first = await publish("room", {"n": 0})
    for n in range(1, 1001):
        await publish("room", {"n": n})
    since = _sub(epoch=first.epoch, offset=first.offset)
    poller = Poller(served.client, url)
    await poller.open()
    await poller.send(since)
    frames = [json.loads(f) for f in await poller.frames(1001, timeout=30)]
    assert frames[0]["sb"] == "subscribed" and frames[0]["recovered"] is True
    assert [f["data"]["n"] for f in frames[1:]] == list(range(1, 1001))
    await poller.send(close=True)
    async with sse(served.client, url) as stream:
        await post(served.client, url, "sse", stream.token, since)
        assert json.loads(await stream.text())["recovered"] is True
        replay = [json.loads(await stream.text()) for _ in range(1000)]
        assert [f["data"]["n"] for f in replay] == list(range(1, 1001))
    await served.no_sessions()
