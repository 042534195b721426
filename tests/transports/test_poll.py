"""Long-poll sessions over the real server: open, poll, ack and redelivery, supersession,
410, idle expiry, overflow."""

from __future__ import annotations

import asyncio

from django.test import override_settings

from switchboard.transports.stats import stats
from tests.transports.clients import Poller


async def test_open_poll_send_and_the_app_closing(served):
    poller = Poller(served.client, served.url())
    opened = await poller.open()
    assert opened.json() == {"session": poller.token, "transport": "poll", "timeout": 25}
    assert opened.headers["cache-control"] == "no-store"
    assert (await poller.send("a", "b")).status_code == 204
    assert await poller.frames(2) == ["echo:a", "echo:b"]
    await poller.send("bytes", "event", "scope")
    frames = await poller.frames(3)
    assert frames[0] == {"b": "AP8="}
    assert frames[1] == {"type": "sb.sse.event", "id": "e:1", "event": "news", "data": "a\nb"}
    assert '"transport": "poll"' in frames[2]
    await poller.send("close")
    answer = (await poller.poll()).json()
    assert answer == {"seq": 5, "frames": [], "close": {"code": 4000, "reason": "bye"}}
    assert await served.event("disconnect") == 4000
    await served.no_sessions()
    assert (await poller.poll()).status_code == 410
    assert (await poller.send("x")).status_code == 410


async def test_a_lost_answer_is_sent_again_until_acknowledged(served):
    poller = Poller(served.client, served.url())
    await poller.open()
    await poller.send("one", "two")
    first = (await poller.poll(ack=0)).json()
    assert first == {"seq": 2, "frames": ["echo:one", "echo:two"]}
    # The answer "got lost": the client polls again with its old ack and gets them again.
    again = (await poller.poll(ack=0)).json()
    assert again == first
    await poller.send("three")
    assert (await poller.poll(ack=2)).json() == {"seq": 3, "frames": ["echo:three"]}
    # Acknowledged frames are gone for good: an older ack cannot bring them back.
    await poller.send("four")
    assert (await poller.poll(ack=3)).json() == {"seq": 4, "frames": ["echo:four"]}
    assert (await poller.poll(ack=0)).json() == {"seq": 4, "frames": ["echo:four"]}
    await poller.send(close=True)
    assert await served.event("disconnect") == 1000
    await served.no_sessions()


async def test_a_second_poll_answers_the_first_at_once(served):
    poller = Poller(served.client, served.url())
    await poller.open()
    first = asyncio.ensure_future(poller.poll(ack=0))
    # Wait until the first poll is held by the session, then poll again.
    session = next(iter(served.sessions().values()))
    while session._poll is None:
        await asyncio.sleep(0.01)
    second = asyncio.ensure_future(poller.poll(ack=0))
    assert (await asyncio.wait_for(first, 5)).json() == {"seq": 0, "frames": []}
    await poller.send("late")
    assert (await asyncio.wait_for(second, 5)).json() == {"seq": 1, "frames": ["echo:late"]}
    await poller.send(close=True)
    await served.no_sessions()


@override_settings(SWITCHBOARD_TRANSPORTS={"POLL_TIMEOUT": 3, "POLL_GRACE": 0.3})
async def test_a_held_poll_whose_client_leaves_is_let_go_at_once(served):
    """A client gone while its poll is held (a closed tab, a dead network) stops costing a
    held poll: the session's idle time (timeout + grace, 3.3 s) starts when it leaves, not
    when the held poll would have timed out (3 s later)."""
    poller = Poller(served.client, served.url())
    await poller.open()
    session = next(iter(served.sessions().values()))
    host, port = served.address.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    path = served.url().split(served.address, 1)[1]
    query = f"&sb_transport=poll&sb_session={poller.token}&sb_ack=0"
    writer.write(f"GET {path}{query} HTTP/1.1\r\nHost: {served.address}\r\n\r\n".encode())
    await writer.drain()
    while session._poll is None:
        await asyncio.sleep(0.01)
    writer.close()
    started = asyncio.get_running_loop().time()
    assert await served.event("disconnect", timeout=10) == 1001
    assert 3 <= asyncio.get_running_loop().time() - started < 5.5
    await served.no_sessions()


@override_settings(SWITCHBOARD_TRANSPORTS={"POLL_TIMEOUT": 0.3, "POLL_GRACE": 0.3})
async def test_empty_poll_after_timeout_and_idle_expiry(served):
    poller = Poller(served.client, served.url())
    opened = await poller.open()
    assert opened.json()["timeout"] == 0.3
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert (await poller.poll()).json() == {"seq": 0, "frames": []}
    assert loop.time() - started >= 0.3
    # No poll any more: after timeout + grace the app gets 1001 and the session is freed.
    assert await served.event("disconnect", timeout=5) == 1001
    assert loop.time() - started >= 0.9
    await served.no_sessions()
    assert (await poller.poll()).status_code == 410


async def test_refusals_and_bad_requests(served):
    assert (await Poller(served.client, served.url("deny")).open(expect=403)).content == b""
    assert (await Poller(served.client, served.url("nope")).open(expect=404)).status_code == 404
    teapot = await Poller(served.client, served.url("teapot")).open(expect=418)
    assert teapot.content == b"short and stout"
    evil = await served.client.post(
        served.url() + "&sb_transport=poll", headers={"Origin": "http://evil.example"}
    )
    assert evil.status_code == 403
    base = served.url() + "&sb_transport=poll"
    assert (await served.client.get(base + "&sb_session=forged&sb_ack=0")).status_code == 410
    poller = Poller(served.client, served.url())
    await poller.open()
    bad_ack = await served.client.get(f"{base}&sb_session={poller.token}&sb_ack=x")
    assert bad_ack.status_code == 400
    assert (await served.client.get(base)).status_code == 405  # GET does not open a poll
    await poller.send(close=True)
    await served.no_sessions()


async def test_overflow_ends_the_session_with_1013(served):
    before = stats.overflows["poll"]
    with override_settings(SWITCHBOARD_TRANSPORTS={"MAX_BUFFERED_BYTES": 1000}):
        poller = Poller(served.client, served.url())
        await poller.open()
        await poller.send("flood 500")  # never polled: the buffer fills
        assert await served.event("flooded") == 500
        assert await served.event("disconnect") == 1013
        answer = (await poller.poll()).json()
        assert answer["close"] == {"code": 1013, "reason": "buffer overflow"}
        assert answer["frames"] == []
    assert stats.overflows["poll"] == before + 1
    await served.no_sessions()
