"""The gateway's side of one connection, against a worker written out by hand: the relay runs
in this process on a real Redis layer, the test plays the worker over the same layer message
by message, so each protocol rule (duplicates, gaps, stale epochs, resends, broken workers)
is exercised exactly. Its ASGI side is driven directly, as a server would drive it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from switchboard.gateway.hub import GatewaySettings
from switchboard.gateway.protocol import messages as m
from switchboard.gateway.relay import GatewayRelay
from switchboard.layers.redis import RedisChannelLayer
from tests.support.redis_servers import RedisServer

pytestmark = pytest.mark.timeout(30)

SCOPE = {
    "type": "websocket",
    "path": "/ws/",
    "query_string": b"",
    "headers": [(b"host", b"example.com")],
    "client": ("127.0.0.1", 5000),
    "server": ("127.0.0.1", 8000),
    "subprotocols": [],
    "extensions": {"websocket.http.response": {}},
}


@pytest.fixture(scope="module")
def redis() -> Any:
    with RedisServer() as server:
        yield server


class Client:
    """The server's side of the relay's ASGI call: what the client sends, what it gets."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outgoing: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.incoming.put_nowait({"type": "websocket.connect"})

    async def receive(self) -> dict[str, Any]:
        return await self.incoming.get()

    async def send(self, event: dict[str, Any]) -> None:
        await self.outgoing.put(event)

    async def got(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.outgoing.get(), 5)


class HandWorker:
    """A worker played by the test: its channel, its hello, what it receives."""

    def __init__(self, layer: RedisChannelLayer) -> None:
        self.layer = layer
        self.channel = ""

    async def join(self) -> None:
        self.channel = await self.layer.new_channel(m.WORKER_CHANNEL_PREFIX)
        await self.layer.group_send(m.GATEWAYS_GROUP, m.worker_hello(self.channel, "hand"))

    async def next(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.layer.receive(self.channel), 5)

    async def tell(self, gateway: str, message: dict[str, Any]) -> None:
        await self.layer.send(gateway, message)


@pytest.fixture
async def setup(redis: RedisServer) -> AsyncIterator[tuple[GatewayRelay, HandWorker]]:
    layer = RedisChannelLayer(hosts=[redis.url])
    settings = GatewaySettings(beat=0.1, lost_after=5.0, resend_after=0.3, gap_timeout=0.5)
    relay = GatewayRelay(None, settings, get_layer=lambda alias: layer)
    await relay.hub.start()
    worker = HandWorker(layer)
    await worker.join()
    yield relay, worker
    await relay.hub.stop()
    await layer.flush()
    await layer.close()


async def connected(
    relay: GatewayRelay, worker: HandWorker
) -> tuple[Client, asyncio.Task[None], dict[str, Any]]:
    """A client connected and accepted through the hand worker; its gateway.connect."""
    client = Client()
    task = asyncio.ensure_future(relay(dict(SCOPE), client.receive, client.send))
    connect = await worker.next()
    assert connect["type"] == m.GATEWAY_CONNECT and connect["resumed"] is False
    cid, epoch, gateway = connect["connection"], connect["epoch"], connect["gateway"]
    await worker.tell(gateway, m.worker_event(cid, epoch, 1, {"type": "websocket.accept"}))
    assert (await client.got())["type"] == "websocket.accept"
    return client, task, connect


async def test_duplicates_from_the_worker_reach_the_client_once(setup: Any) -> None:
    relay, worker = setup
    client, task, connect = await connected(relay, worker)
    cid, epoch, gateway = connect["connection"], connect["epoch"], connect["gateway"]
    hello = {"type": "websocket.send", "text": "hi"}
    for seq in (2, 2, 3, 2):  # a resend after a layer error, then a late copy
        text = {2: "hi", 3: "there"}[seq]
        await worker.tell(gateway, m.worker_event(cid, epoch, seq, {**hello, "text": text}))
    assert (await client.got())["text"] == "hi"
    assert (await client.got())["text"] == "there"
    await asyncio.sleep(0.2)
    assert client.outgoing.empty()
    task.cancel()


async def test_the_oldest_unacknowledged_message_is_sent_again(setup: Any) -> None:
    relay, worker = setup
    client, task, connect = await connected(relay, worker)
    await client.incoming.put({"type": "websocket.receive", "text": "one"})
    first = await worker.next()
    assert (first["type"], first["seq"], first["event"]["text"]) == (m.GATEWAY_EVENT, 1, "one")
    # No worker.ack: after resend_after the same message, same number, comes again.
    again = await worker.next()
    assert again == first
    # Acknowledged: no more copies.
    await worker.tell(connect["gateway"], m.worker_ack(connect["connection"], connect["epoch"], 1))
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(worker.layer.receive(worker.channel), 0.8)
    task.cancel()


async def test_a_worker_event_lost_for_good_closes_the_socket_with_1011(
    setup: Any, caplog: pytest.LogCaptureFixture
) -> None:
    relay, worker = setup
    client, task, connect = await connected(relay, worker)
    cid, epoch, gateway = connect["connection"], connect["epoch"], connect["gateway"]
    # Number 2 never arrives: 3 is held, then the wait is given up.
    await worker.tell(
        gateway, m.worker_event(cid, epoch, 3, {"type": "websocket.send", "text": "x"})
    )
    with caplog.at_level(logging.ERROR, "switchboard.gateway"):
        assert await client.got() == {"type": "websocket.close", "code": 1011}
    assert "lost in the channel layer" in caplog.text
    task.cancel()


async def test_a_worker_that_breaks_the_protocol_closes_only_its_connection(
    setup: Any, caplog: pytest.LogCaptureFixture
) -> None:
    relay, worker = setup
    client = Client()
    task = asyncio.ensure_future(relay(dict(SCOPE), client.receive, client.send))
    connect = await worker.next()
    cid, epoch, gateway = connect["connection"], connect["epoch"], connect["gateway"]
    # A message before the accept: no such transition from CONNECTING.
    send = {"type": "websocket.send", "text": "too early"}
    with caplog.at_level(logging.ERROR, "switchboard.gateway"):
        await worker.tell(gateway, m.worker_event(cid, epoch, 1, send))
        response = await client.got()
    assert (response["type"], response["status"]) == ("websocket.http.response.start", 500)
    assert "WORKER_MESSAGE" in caplog.text and "CONNECTING" in caplog.text
    task.cancel()


async def test_stale_and_malformed_messages_are_dropped_and_counted(
    setup: Any, caplog: pytest.LogCaptureFixture
) -> None:
    relay, worker = setup
    client, task, connect = await connected(relay, worker)
    cid, epoch, gateway = connect["connection"], connect["epoch"], connect["gateway"]
    stats = relay.hub.stats
    event = {"type": "websocket.send", "text": "from an old epoch"}
    with caplog.at_level(logging.WARNING, "switchboard.gateway"):
        await worker.tell(gateway, m.worker_event(cid, epoch + 7, 2, event))
        await worker.tell(gateway, {"type": "worker.event", "connection": cid})
        await worker.tell(gateway, m.worker_event(cid, epoch, 2, {**event, "text": "current"}))
        assert (await client.got())["text"] == "current"
    assert stats.stale_messages == 1 and stats.malformed_messages == 1
    assert "dropped a malformed message: worker.event: missing 'epoch'" in caplog.text
    task.cancel()


async def test_a_message_that_cannot_travel_is_refused_before_any_worker_sees_it(
    setup: Any, caplog: pytest.LogCaptureFixture
) -> None:
    relay, worker = setup
    client = Client()
    scope = {**SCOPE, "path": object()}  # not plain data: no worker could route it
    with caplog.at_level(logging.ERROR, "switchboard.gateway"):
        await asyncio.wait_for(relay(scope, client.receive, client.send), 5)
    assert "cannot go to a worker: 'path'" in caplog.text
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(worker.layer.receive(worker.channel), 0.3)


async def test_a_connect_nobody_answers_is_sent_again(setup: Any) -> None:
    relay, worker = setup
    client = Client()
    task = asyncio.ensure_future(relay(dict(SCOPE), client.receive, client.send))
    first = await worker.next()
    assert first["type"] == m.GATEWAY_CONNECT
    # Lost on its way, as far as the gateway can tell: the same connect, same epoch, again.
    again = await worker.next()
    assert again == first
    gateway, cid, epoch = first["gateway"], first["connection"], first["epoch"]
    await worker.tell(gateway, m.worker_event(cid, epoch, 1, {"type": "websocket.accept"}))
    assert (await client.got())["type"] == "websocket.accept"
    with pytest.raises(asyncio.TimeoutError):  # answered: no more copies
        await asyncio.wait_for(worker.layer.receive(worker.channel), 0.8)
    task.cancel()
