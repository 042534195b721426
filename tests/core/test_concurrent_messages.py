"""Opt-in concurrent message handling (max_concurrent_messages), on the real server."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError

from switchboard.generic.websocket import (
    AsyncJsonWebsocketConsumer,
    AsyncJsonWebsocketDemultiplexer,
    JsonWebsocketConsumer,
)
from switchboard.testing import WebsocketCommunicator
from tests.support.serving import serving

log: list[tuple] = []


class Slow(AsyncJsonWebsocketConsumer):
    """Each message: report start, sleep, report end. Concurrency is set per test."""

    running = 0

    async def connect(self):
        await asyncio.sleep(0.2)  # a slow connect: no message may start before it is done
        log.append(("connected",))
        await self.accept()

    async def receive_json(self, content, **kwargs):
        if content.get("fail"):
            raise RuntimeError("handler failure (expected by the test)")
        type(self).running += 1
        log.append(("start", content["n"], type(self).running))
        await self.send_json({"start": content["n"]})
        await asyncio.sleep(content.get("sleep", 0.3))
        type(self).running -= 1
        log.append(("end", content["n"]))
        await self.send_json({"end": content["n"]})

    def concurrency_key(self, message):
        text = message.get("text")
        return json.loads(text).get("key") if text else None

    async def disconnect(self, code):
        log.append(("disconnect", type(self).running))


class SyncConcurrent(JsonWebsocketConsumer):
    max_concurrent_messages = 4


@pytest.fixture(autouse=True)
def _reset():
    log.clear()
    Slow.running = 0


async def _json(ws, timeout=5):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def test_default_is_one_message_at_a_time():
    async with serving(Slow.as_asgi()) as netloc, connect(f"ws://{netloc}/") as ws:
        for n in range(3):
            await ws.send(json.dumps({"n": n, "sleep": 0.1}))
        replies = [await _json(ws) for _ in range(6)]
        assert replies == [
            {"start": 0},
            {"end": 0},
            {"start": 1},
            {"end": 1},
            {"start": 2},
            {"end": 2},
        ]


async def test_up_to_the_limit_run_at_once_and_connect_and_disconnect_run_alone():
    app = Slow.as_asgi(max_concurrent_messages=3)
    async with serving(app) as netloc:
        async with connect(f"ws://{netloc}/") as ws:
            assert log == [("connected",)]
            for n in range(5):
                await ws.send(json.dumps({"n": n, "sleep": 0.5}))
            first = [await _json(ws) for _ in range(3)]
            assert sorted(r["start"] for r in first) == [0, 1, 2]  # three at once...
            assert {"start": 3} not in first  # ...and not a fourth (bounded)
            replies = [await _json(ws) for _ in range(7)]
            assert {"end": 4} in replies
            assert max(entry[2] for entry in log if entry[0] == "start") == 3
            await ws.send(json.dumps({"n": 9, "sleep": 0.5}))
            assert await _json(ws) == {"start": 9}
        # The disconnect waited for message 9's handler: nothing was running when it ran.
        for _ in range(100):
            if log[-1][0] == "disconnect":
                break
            await asyncio.sleep(0.02)
        assert log[-1] == ("disconnect", 0)
        assert ("end", 9) in log


async def test_messages_sharing_a_key_keep_their_order():
    app = Slow.as_asgi(max_concurrent_messages=4)
    async with serving(app) as netloc, connect(f"ws://{netloc}/") as ws:
        await ws.send(json.dumps({"n": 0, "key": "a", "sleep": 0.4}))
        await ws.send(json.dumps({"n": 1, "key": "a", "sleep": 0.0}))
        await ws.send(json.dumps({"n": 2, "key": "b", "sleep": 0.0}))
        replies = [await _json(ws) for _ in range(6)]
        # "b" overtook the slow "a"; the second "a" waited for the first.
        assert replies.index({"end": 2}) < replies.index({"end": 0})
        assert replies.index({"end": 0}) < replies.index({"start": 1})


async def test_a_failing_handler_ends_the_consumer_as_in_the_default_mode():
    app = Slow.as_asgi(max_concurrent_messages=2)
    async with serving(app) as netloc, connect(f"ws://{netloc}/") as ws:
        await ws.send(json.dumps({"n": 0, "sleep": 5}))
        assert await _json(ws) == {"start": 0}
        await ws.send(json.dumps({"fail": True}))
        with pytest.raises(ConnectionClosedError) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd.code == 1011  # the server's "application error" close
    assert ("end", 0) not in log  # the other running handler was cancelled


class ConcurrentStreams(AsyncJsonWebsocketDemultiplexer):
    applications = {"slow": Slow.as_asgi(max_concurrent_messages=2)}


async def test_a_stream_may_declare_concurrency_too():
    async with serving(ConcurrentStreams.as_asgi()) as netloc, connect(f"ws://{netloc}/") as ws:
        assert (await _json(ws))["type"] == "accept"
        for n in range(2):
            await ws.send(json.dumps({"stream": "slow", "payload": {"n": n, "sleep": 0.5}}))
        first = [(await _json(ws))["payload"] for _ in range(2)]
        assert sorted(first, key=str) == [{"start": 0}, {"start": 1}]


async def test_sync_consumers_refuse_concurrency():
    # Their handlers share one thread (thread-sensitive): concurrency would be a silent lie.
    communicator = WebsocketCommunicator(SyncConcurrent.as_asgi(), "/")
    with pytest.raises(TypeError, match="needs an async consumer"):
        await communicator.connect()
