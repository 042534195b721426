"""The browser protocol of switchboard.realtime (presence, reliable groups, recovery), driven
through the WebsocketCommunicator on the in-memory layer and, in-process, on real Redis."""

from __future__ import annotations

import pytest

from switchboard.layers import channel_layers
from switchboard.layers.inmemory import InMemoryChannelLayer
from switchboard.realtime import RealtimeConsumer, publish
from switchboard.realtime.presence import list_presence
from switchboard.testing import WebsocketCommunicator


class Room(RealtimeConsumer):
    async def connect(self) -> None:
        self.allowed_topics = {"room", "other"}
        self.presence_topics = ["room"]
        await self.accept()

    async def get_presence_key(self) -> str:
        return self.scope["query_string"].decode() or self.presence_ref

    async def get_presence_meta(self) -> dict:
        return {"device": "test"}

    async def receive_json(self, content, **kwargs):
        await self.send_json({"app": content})


@pytest.fixture(params=["inmemory", "redis"])
def layer(request):
    if request.param == "inmemory":
        built = InMemoryChannelLayer()
        channel_layers.set("default", built)
        yield built
        return
    from switchboard.layers.redis import RedisChannelLayer

    server = request.getfixturevalue("redis_server")
    built = RedisChannelLayer(hosts=[server.url])
    channel_layers.set("default", built)
    yield built


async def _connect(user: str = "") -> WebsocketCommunicator:
    client = WebsocketCommunicator(Room.as_asgi(), "/ws/?" + user if user else "/ws/")
    connected, _ = await client.connect(timeout=5)
    assert connected
    return client


async def _frames(client: WebsocketCommunicator, count: int) -> list[dict]:
    return [await client.receive_json_from(timeout=5) for _ in range(count)]


async def _until(client: WebsocketCommunicator, kind: str) -> dict:
    for _ in range(50):
        frame = await client.receive_json_from(timeout=5)
        if frame.get("sb") == kind:
            return frame
    raise AssertionError(f"no {kind} frame")


async def test_application_json_still_reaches_receive_json(layer):
    client = await _connect()
    await client.send_json_to({"hello": 1})
    assert await client.receive_json_from(timeout=5) == {"app": {"hello": 1}}
    await client.send_json_to({"sb": "nonsense"})
    assert (await client.receive_json_from(timeout=5))["sb"] == "error"
    await client.disconnect()


async def test_subscribe_history_live_and_recovery_after_reconnect(layer):
    for i in range(3):
        await publish("room", {"n": i})
    client = await _connect()
    await client.send_json_to({"sb": "sub", "topic": "room", "history": 2})
    subscribed, *pubs = await _frames(client, 3)
    assert subscribed["sb"] == "subscribed" and "recovered" not in subscribed
    assert subscribed["offset"] == 1  # the history that follows starts after offset 1
    assert [(p["offset"], p["data"]) for p in pubs] == [(2, {"n": 1}), (3, {"n": 2})]
    epoch = subscribed["epoch"]

    await publish("room", {"n": 3})
    live = await client.receive_json_from(timeout=5)
    assert (live["sb"], live["offset"], live["epoch"], live["data"]) == ("pub", 4, epoch, {"n": 3})
    await client.disconnect()

    for i in range(4, 104):  # 100 publications while the client is away
        await publish("room", {"n": i})
    again = await _connect()
    await again.send_json_to({"sb": "sub", "topic": "room", "epoch": epoch, "offset": 4})
    subscribed, *pubs = await _frames(again, 101)
    assert subscribed["recovered"] is True and subscribed["offset"] == 4
    assert [p["offset"] for p in pubs] == list(range(5, 105))
    assert [p["data"]["n"] for p in pubs] == list(range(4, 104))
    await publish("room", {"n": 104})
    assert (await again.receive_json_from(timeout=5))["offset"] == 105
    await again.disconnect()


async def test_recovery_beyond_history_says_resync(layer):
    first = await publish("room", {"n": 0}, size=5)
    for i in range(1, 10):
        await publish("room", {"n": i}, size=5)
    client = await _connect()
    await client.send_json_to(
        {"sb": "sub", "topic": "room", "epoch": first.epoch, "offset": 1, "history": 3}
    )
    subscribed, *pubs = await _frames(client, 4)
    assert subscribed["recovered"] is False
    assert [p["offset"] for p in pubs] == [8, 9, 10] and subscribed["offset"] == 7

    # A wrong epoch (the history was lost and started again) is never read as this one.
    await client.send_json_to({"sb": "sub", "topic": "other", "epoch": "gone", "offset": 0})
    assert (await client.receive_json_from(timeout=5))["recovered"] is False
    await client.disconnect()


async def test_gap_in_live_publications_is_filled_and_duplicates_dropped(layer):
    client = await _connect()
    await client.send_json_to({"sb": "sub", "topic": "room"})
    subscribed = await client.receive_json_from(timeout=5)
    epoch = subscribed["epoch"]
    store = layer.history_store()
    # Appended without being sent (a pub/sub message lost): the next one reveals the gap.
    await store.append("room", {"n": "lost"}, 100, 60)
    await publish("room", {"n": "next"})
    pubs = await _frames(client, 2)
    assert [(p["offset"], p["data"]["n"]) for p in pubs] == [(1, "lost"), (2, "next")]
    # A late duplicate of an offset already delivered is dropped.
    await layer.group_send(
        "room",
        {"type": "sb.publication", "topic": "room", "epoch": epoch, "offset": 1, "data": {}},
    )
    await publish("room", {"n": "after"})
    assert (await client.receive_json_from(timeout=5))["data"] == {"n": "after"}
    await client.disconnect()


async def test_gap_beyond_history_sends_resync(layer):
    client = await _connect()
    await client.send_json_to({"sb": "sub", "topic": "room"})
    await client.receive_json_from(timeout=5)
    store = layer.history_store()
    for _ in range(5):  # lost, and trimmed away by the next publications' size
        await store.append("room", {"n": "lost"}, 2, 60)
    await publish("room", {"n": "x"}, size=2)
    resync, pub = await _frames(client, 2)
    assert resync == {"sb": "resync", "topic": "room", "epoch": pub["epoch"], "offset": 5}
    assert pub["offset"] == 6
    await client.disconnect()


async def test_presence_state_diffs_and_collapse_by_user(layer):
    alice_phone = await _connect("alice")
    await alice_phone.send_json_to({"sb": "presence", "topic": "room"})
    state = (await _until(alice_phone, "presence_state"))["state"]
    assert list(state) == ["alice"] and state["alice"]["metas"][0]["device"] == "test"

    alice_laptop = await _connect("alice")
    diff = await _until(alice_phone, "presence_diff")
    assert list(diff["joins"]) == ["alice"] and diff["leaves"] == {}
    bob = await _connect("bob")
    diff = await _until(alice_phone, "presence_diff")
    assert list(diff["joins"]) == ["bob"]

    listed = await list_presence("room")
    assert sorted(listed) == ["alice", "bob"]
    assert len(listed["alice"]["metas"]) == 2  # two connections, one user
    refs = {m["ref"] for m in listed["alice"]["metas"]}
    assert len(refs) == 2

    await alice_laptop.disconnect()
    diff = await _until(alice_phone, "presence_diff")
    assert list(diff["leaves"]) == ["alice"] and diff["leaves"]["alice"]["metas"][0]["ref"] in refs
    await bob.disconnect()
    diff = await _until(alice_phone, "presence_diff")
    assert list(diff["leaves"]) == ["bob"]
    assert sorted(await list_presence("room")) == ["alice"]
    await alice_phone.disconnect()
    assert await list_presence("room") == {}


async def test_consumer_that_crashes_is_untracked(layer):
    class Crashing(Room):
        async def receive_json(self, content, **kwargs):
            raise RuntimeError("boom")

    client = WebsocketCommunicator(Crashing.as_asgi(), "/ws/?carol")
    assert (await client.connect(timeout=5))[0]
    assert list(await list_presence("room")) == ["carol"]
    await client.send_json_to({"x": 1})
    with pytest.raises(RuntimeError):
        await client.wait(5)
    assert await list_presence("room") == {}


async def test_refused_topics(layer):
    client = await _connect()
    await client.send_json_to({"sb": "sub", "topic": "secret"})
    assert await client.receive_json_from(timeout=5) == {
        "sb": "error",
        "error": "subscribe refused",
        "topic": "secret",
    }
    await client.send_json_to({"sb": "presence", "topic": "secret"})
    assert (await client.receive_json_from(timeout=5))["error"] == "presence refused"
    await client.disconnect()


async def test_unsubscribe_stops_publications(layer):
    client = await _connect()
    await client.send_json_to({"sb": "sub", "topic": "room"})
    await client.receive_json_from(timeout=5)
    await client.send_json_to({"sb": "unsub", "topic": "room"})
    assert await client.receive_json_from(timeout=5) == {"sb": "unsubscribed", "topic": "room"}
    await publish("room", {"n": 1})
    assert await client.receive_nothing(0.3)
    await client.disconnect()
