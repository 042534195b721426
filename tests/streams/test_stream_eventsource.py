"""Signed streams for a bare EventSource (``format=events`` over the SSE transport): plain
events with ``epoch:offset`` ids, ``Last-Event-ID`` recovery, explicit ``sb.resync``."""

from __future__ import annotations

import json
from urllib.parse import quote

import httpx

from switchboard.streams import apublish, signed_stream_name
from tests.streams.site import application
from tests.streams.test_stream_websocket import _expired_token
from tests.support.serving import serving
from tests.transports.clients import sse


def _url(host: str, token: str) -> str:
    return f"http://{host}/streams/?stream={quote(token)}&format=events"


async def test_plain_events_recover_from_last_event_id(layer):
    token = signed_stream_name("news")
    async with serving(application) as host, httpx.AsyncClient(timeout=10) as client:
        async with sse(client, _url(host, token)) as stream:
            start = await stream.next()
            assert start["event"] == "sb.subscribed"
            epoch, _, offset = start["id"].rpartition(":")
            assert json.loads(start["data"]) == {"epoch": epoch, "offset": int(offset)}

            await apublish("news", "<li>one</li>\n<li>two</li>", event="items")
            await apublish("news", {"n": 2})
            html, data = await stream.next(), await stream.next()
            assert html == {
                "id": f"{epoch}:{int(offset) + 1}",
                "event": "items",
                "data": "<li>one</li>\n<li>two</li>",  # HTML as is, line break included
            }
            assert data == {
                "id": f"{epoch}:{int(offset) + 2}",
                "event": "message",
                "data": '{"n": 2}',
            }

        # Missed while the EventSource was reconnecting: its Last-Event-ID gets them back.
        await apublish("news", {"n": 3})
        await apublish("news", {"n": 4})
        headers = {"Last-Event-ID": data["id"]}
        async with sse(client, _url(host, token), headers=headers) as stream:
            resumed = await stream.next()
            assert (resumed["event"], resumed["id"]) == ("sb.subscribed", data["id"])
            missed = [await stream.next(), await stream.next()]
            assert [json.loads(m["data"]) for m in missed] == [{"n": 3}, {"n": 4}]
            assert missed[-1]["id"] == f"{epoch}:{int(offset) + 4}"
            await apublish("news", {"n": 5})
            assert json.loads((await stream.next())["data"]) == {"n": 5}


async def test_a_position_from_another_history_is_an_explicit_resync(memory_layer):
    token = signed_stream_name("news")
    for n in range(3):
        await apublish("news", {"n": n})
    async with serving(application) as host, httpx.AsyncClient(timeout=10) as client:
        latest = 3
        for last_event_id in ["0123456789ab:2", "not a position"]:
            headers = {"Last-Event-ID": last_event_id}
            async with sse(client, _url(host, token), headers=headers) as stream:
                resync = await stream.next()
                assert resync["event"] == "sb.resync"
                position = json.loads(resync["data"])
                assert position["epoch"] != "0123456789ab" and position["offset"] == latest
                # Its id is where the next reconnect resumes from.
                assert resync["id"] == f"{position['epoch']}:{latest}"
                await apublish("news", {"n": "live"})
                live = await stream.next()
                assert live["id"] == f"{position['epoch']}:{latest + 1}"
                assert live["data"] == '{"n": "live"}'
                latest += 1


async def test_a_refused_token_is_a_403_that_says_why(memory_layer):
    async with serving(application) as host, httpx.AsyncClient(timeout=10) as client:
        async with sse(client, _url(host, _expired_token("news"))) as stream:
            assert stream.response.status_code == 403
            assert (await stream.response.aread()) == b"stream token expired\n"
