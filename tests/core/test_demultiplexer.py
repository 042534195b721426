"""Demultiplexers: several consumers as streams of one WebSocket, on the real server."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from switchboard.generic.websocket import (
    AsyncJsonWebsocketConsumer,
    AsyncJsonWebsocketDemultiplexer,
    JsonWebsocketConsumer,
    JsonWebsocketDemultiplexer,
)
from tests.support.serving import serving

events: list[tuple] = []  # what the streams' hooks saw, in order


class Echo(AsyncJsonWebsocketConsumer):
    """An ordinary consumer, unaware it runs as a stream."""

    groups = ["demux-room"]

    async def connect(self):
        events.append(("connect", self.scope["stream"], self.channel_name))
        await self.accept()

    async def receive_json(self, content, **kwargs):
        if content == "boom":
            raise RuntimeError("stream failure (expected by the test)")
        if content == "close":
            await self.close(4001)
        elif isinstance(content, dict) and "broadcast" in content:
            await self.channel_layer.group_send(
                "demux-room", {"type": "room.message", "text": content["broadcast"]}
            )
        elif isinstance(content, dict) and "sleep" in content:
            await asyncio.sleep(content["sleep"])
            await self.send_json({"slept": content["n"]})
        else:
            await self.send_json({"echo": content, "channel": self.channel_name})

    async def room_message(self, event):
        await self.send_json({"room": event["text"]})

    async def disconnect(self, code):
        events.append(("disconnect", self.scope["stream"], code))


class Counter(JsonWebsocketConsumer):
    """A synchronous consumer as a stream: its state is per stream instance."""

    def connect(self):
        self.count = 0
        self.accept()

    def receive_json(self, content, **kwargs):
        self.count += 1
        self.send_json({"count": self.count, "got": content})


class Refuser(AsyncJsonWebsocketConsumer):
    async def connect(self):
        await self.close()


class Binary(AsyncJsonWebsocketConsumer):
    async def receive_json(self, content, **kwargs):
        await self.send(bytes_data=b"\x00")


class Demux(AsyncJsonWebsocketDemultiplexer):
    applications = {
        "echo": Echo.as_asgi(),
        "counter": Counter.as_asgi(),
        "refuser": Refuser.as_asgi(),
        "binary": Binary.as_asgi(),
    }


class Busy(AsyncJsonWebsocketDemultiplexer):
    applications = {"echo": Echo.as_asgi()}
    max_pending_messages = 2


class SyncDemux(JsonWebsocketDemultiplexer):
    applications = {"counter": Counter.as_asgi()}

    def connect(self):
        # Sync hook (in a thread): refuse a socket without ?ok, as an auth check would.
        if b"ok" in self.scope["query_string"]:
            self.accept()
        else:
            self.close()

    def disconnect(self, code):
        events.append(("sync-demux-disconnect", code))


async def _frame(ws, timeout: float = 5) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def _frames_until(ws, predicate, timeout: float = 5) -> list[dict]:
    """Frames up to and including the first one ``predicate`` accepts."""
    got = []
    while True:
        frame = await _frame(ws, timeout)
        got.append(frame)
        if predicate(frame):
            return got


async def _open(ws) -> dict[str, dict]:
    """The control frames each stream sends while starting (accept, or close if it refuses)."""
    status: dict[str, dict] = {}
    while len(status) < 4:
        frame = await _frame(ws)
        status[frame["stream"]] = frame
    return status


@pytest.fixture(autouse=True)
def _clear_events():
    events.clear()


async def test_streams_are_separate_consumers_and_a_failing_one_leaves_the_rest_running():
    async with serving(Demux.as_asgi()) as netloc, connect(f"ws://{netloc}/") as ws:
        status = await _open(ws)
        assert status["echo"] == {"stream": "echo", "type": "accept"}
        assert status["counter"] == {"stream": "counter", "type": "accept"}
        # A stream refusing its connection closes only itself: no accept came before.
        assert status["refuser"] == {"stream": "refuser", "type": "close", "code": 1000}

        await ws.send(json.dumps({"stream": "echo", "payload": {"hello": [1, 2]}}))
        reply = await _frame(ws)
        assert reply["stream"] == "echo"
        assert reply["payload"]["echo"] == {"hello": [1, 2]}
        echo_channel = reply["payload"]["channel"]
        for n in range(3):
            await ws.send(json.dumps({"stream": "counter", "payload": n}))
        for n in range(3):
            assert await _frame(ws) == {"stream": "counter", "payload": {"count": n + 1, "got": n}}

        # The echo stream crashes: it is closed with 1011 (RFC 6455 7.4.1), the rest carry on.
        await ws.send(json.dumps({"stream": "echo", "payload": "boom"}))
        assert await _frame(ws) == {"stream": "echo", "type": "close", "code": 1011}
        await ws.send(json.dumps({"stream": "echo", "payload": "anyone?"}))
        assert await _frame(ws) == {"type": "error", "error": "stream is closed", "stream": "echo"}
        await ws.send(json.dumps({"stream": "counter", "payload": "still here"}))
        assert (await _frame(ws))["payload"] == {"count": 4, "got": "still here"}

        # The client may start it again: a fresh consumer with a fresh channel.
        await ws.send(json.dumps({"stream": "echo", "type": "connect"}))
        assert await _frame(ws) == {"stream": "echo", "type": "accept"}
        await ws.send(json.dumps({"stream": "echo", "payload": 1}))
        again = await _frame(ws)
        assert again["payload"]["echo"] == 1 and again["payload"]["channel"] != echo_channel

        # A stream sending a binary frame cannot be multiplexed: that stream ends, with 1011.
        await ws.send(json.dumps({"stream": "binary", "payload": 1}))
        assert await _frame(ws) == {"stream": "binary", "type": "close", "code": 1011}
        await ws.send(json.dumps({"stream": "counter", "payload": "ok"}))
        assert (await _frame(ws))["payload"]["count"] == 5


async def test_unknown_streams_and_malformed_frames_get_error_frames_and_the_socket_stays():
    async with serving(Demux.as_asgi()) as netloc, connect(f"ws://{netloc}/") as ws:
        await _open(ws)
        await ws.send(json.dumps({"stream": "nope", "payload": 1}))
        assert await _frame(ws) == {
            "type": "error",
            "error": "unknown stream 'nope'",
            "stream": "nope",
        }
        await ws.send(json.dumps([1, 2]))
        assert (await _frame(ws))["error"] == 'a frame must be an object with a "stream" string'
        await ws.send(json.dumps({"stream": "echo"}))
        assert await _frame(ws) == {
            "type": "error",
            "error": 'a data frame needs a "payload"',
            "stream": "echo",
        }
        await ws.send("{not json")
        assert (await _frame(ws))["error"] == "the frame is not valid JSON"
        await ws.send(b"\x01\x02")
        assert (await _frame(ws))["error"].startswith("binary frames are not supported")
        await ws.send(json.dumps({"stream": "echo", "type": "dance"}))
        assert (await _frame(ws))["error"] == "unknown control type 'dance'"
        await ws.send(json.dumps({"stream": "echo", "type": "connect"}))
        assert (await _frame(ws))["error"] == "stream is already connected"
        await ws.send(json.dumps({"stream": "echo", "payload": "alive"}))
        assert (await _frame(ws))["payload"]["echo"] == "alive"


async def test_each_stream_has_its_own_channel_and_groups_across_sockets():
    async with (
        serving(Demux.as_asgi()) as netloc,
        connect(f"ws://{netloc}/") as alice,
        connect(f"ws://{netloc}/") as bob,
    ):
        await _open(alice)
        await _open(bob)
        channels = [e[2] for e in events if e[0] == "connect"]
        assert len(channels) == 2 and len(set(channels)) == 2  # one per echo stream instance

        # Alice's echo stream sends to its group: both sockets' echo streams get it, framed.
        await alice.send(json.dumps({"stream": "echo", "payload": {"broadcast": "hi all"}}))
        for ws in (alice, bob):
            assert await _frame(ws) == {"stream": "echo", "payload": {"room": "hi all"}}

        # Bob's echo stream closes itself: per-stream close, its group membership goes too.
        await bob.send(json.dumps({"stream": "echo", "payload": "close"}))
        assert await _frame(bob) == {"stream": "echo", "type": "close", "code": 4001}
        for _ in range(50):
            if ("disconnect", "echo", 4001) in events:
                break
            await asyncio.sleep(0.02)
        assert ("disconnect", "echo", 4001) in events
        await alice.send(json.dumps({"stream": "echo", "payload": {"broadcast": "second"}}))
        assert await _frame(alice) == {"stream": "echo", "payload": {"room": "second"}}
        await bob.send(json.dumps({"stream": "counter", "payload": "x"}))
        # Bob's next frame is the counter's reply: the broadcast did not reach a closed stream.
        assert (await _frame(bob))["stream"] == "counter"

        # The client closes alice's echo stream: its consumer's disconnect runs with the code.
        await alice.send(json.dumps({"stream": "echo", "type": "close", "code": 4100}))
        assert await _frame(alice) == {"stream": "echo", "type": "close", "code": 4100}
        for _ in range(50):
            if ("disconnect", "echo", 4100) in events:
                break
            await asyncio.sleep(0.02)
        assert ("disconnect", "echo", 4100) in events


async def test_streams_keep_their_own_order_and_a_slow_one_does_not_hold_up_another():
    async with serving(Demux.as_asgi()) as netloc, connect(f"ws://{netloc}/") as ws:
        await _open(ws)
        await ws.send(json.dumps({"stream": "echo", "payload": {"sleep": 1.0, "n": 0}}))
        for n in range(1, 20):
            await ws.send(json.dumps({"stream": "echo", "payload": {"sleep": 0, "n": n}}))
        for n in range(20):
            await ws.send(json.dumps({"stream": "counter", "payload": n}))
        frames = await _frames_until(ws, lambda f: f["payload"].get("slept") == 19, timeout=10)
        echo = [f["payload"]["slept"] for f in frames if f["stream"] == "echo"]
        counter = [f["payload"]["got"] for f in frames if f["stream"] == "counter"]
        assert echo == list(range(20))
        assert counter == list(range(20))
        # Every counter reply came before the echo stream finished its first (slow) message.
        assert all(f["stream"] == "counter" for f in frames[:20])


async def test_socket_close_disconnects_every_stream():
    async with serving(Demux.as_asgi()) as netloc:
        async with connect(f"ws://{netloc}/") as ws:
            await _open(ws)
        for _ in range(100):
            if ("disconnect", "echo", 1000) in events:
                break
            await asyncio.sleep(0.02)
        assert ("disconnect", "echo", 1000) in events


async def test_a_stream_queue_beyond_max_pending_messages_refuses_with_an_error_frame():
    async with serving(Busy.as_asgi()) as netloc, connect(f"ws://{netloc}/") as ws:
        assert (await _frame(ws))["type"] == "accept"
        for n in range(5):  # the first blocks the stream; two wait; the rest are refused
            await ws.send(json.dumps({"stream": "echo", "payload": {"sleep": 0.5, "n": n}}))
        frames = await _frames_until(ws, lambda f: f.get("payload", {}).get("slept") == 2)
        busy = [f for f in frames if f.get("type") == "error"]
        assert (
            busy
            == [{"type": "error", "error": "stream is busy: message dropped", "stream": "echo"}] * 2
        )
        assert [f["payload"]["slept"] for f in frames if "payload" in f] == [0, 1, 2]


async def test_sync_demultiplexer_runs_its_hooks_in_a_thread_and_can_refuse_the_socket():
    async with serving(SyncDemux.as_asgi()) as netloc:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"ws://{netloc}/"):
                pass
        assert refused.value.response.status_code == 403  # close before accept (ASGI spec)
        async with connect(f"ws://{netloc}/?ok") as ws:
            assert await _frame(ws) == {"stream": "counter", "type": "accept"}
            await ws.send(json.dumps({"stream": "counter", "payload": "a"}))
            assert await _frame(ws) == {"stream": "counter", "payload": {"count": 1, "got": "a"}}
        for _ in range(100):
            if ("sync-demux-disconnect", 1000) in events:
                break
            await asyncio.sleep(0.02)
        assert ("sync-demux-disconnect", 1000) in events


def test_the_demultiplexers_are_importable_from_generic_websocket():
    from switchboard.generic import demultiplexer, websocket

    assert (
        websocket.AsyncJsonWebsocketDemultiplexer is demultiplexer.AsyncJsonWebsocketDemultiplexer
    )
    assert websocket.JsonWebsocketDemultiplexer is demultiplexer.JsonWebsocketDemultiplexer
    with pytest.raises(AttributeError):
        websocket.NoSuchThing  # noqa: B018


@pytest.mark.parametrize("base", [AsyncJsonWebsocketDemultiplexer, JsonWebsocketDemultiplexer])
async def test_groups_without_a_channel_layer_are_a_configuration_error(base):
    """Like every WebSocket consumer (Channels' generic consumers raise InvalidChannelLayerError
    when ``groups`` is set but the layer is missing), not an AttributeError on None."""
    from switchboard.exceptions import InvalidChannelLayerError
    from switchboard.testing import WebsocketCommunicator

    grouped = type("Grouped", (base,), {"groups": ["g"], "channel_layer_alias": "unset"})
    communicator = WebsocketCommunicator(grouped.as_asgi(), "/")
    with pytest.raises(InvalidChannelLayerError, match="'unset' is not configured"):
        await communicator.connect()
