"""The Redis layer's wire formats (``serializer_format``: msgpack, json, registered ones, with
encryption on top) and ``close_pools()``, as channels_redis offers them, against a real
redis-server."""

from __future__ import annotations

import asyncio
import json

import pytest

from switchboard.layers import UnserializableMessage
from switchboard.layers.redis import RedisChannelLayer
from switchboard.layers.redis.serializer import (
    BaseMessageSerializer,
    JSONSerializer,
    SerializerDoesNotExist,
    registry,
)

WAIT = 3.0


@pytest.fixture
async def make_layer(redis_server):
    made: list[RedisChannelLayer] = []

    def make(**config) -> RedisChannelLayer:
        made.append(RedisChannelLayer(hosts=[redis_server.url], **config))
        return made[-1]

    yield make
    for layer in made:
        await layer.close()


async def receive(layer, channel):
    return await asyncio.wait_for(layer.receive(channel), WAIT)


async def every_path(sender, receiver, message):
    """``message`` sent to a worker list, a channel of another process, a channel of the
    sender's own and a group with members in both: what each receiver got."""
    own, theirs = await sender.new_channel(), await receiver.new_channel()
    await sender.group_add("g", own)
    await receiver.group_add("g", theirs)
    await sender.send("jobs", message)
    await sender.send(theirs, message)
    await sender.send(own, message)
    await sender.group_send("g", message)
    return [
        await receive(receiver, "jobs"),
        await receive(receiver, theirs),
        await receive(sender, own),
        await receive(sender, own),
        await receive(receiver, theirs),
    ]


MESSAGE = {"type": "chat.message", "text": "héllo ✓", "n": 3, "f": 0.5, "ok": None, "l": [1, "2"]}


async def test_json_format_carries_messages_on_every_path_as_json(make_layer, redis_server):
    """channels_redis: ``serializer_format`` is ``"msgpack"`` by default and may be ``"json"``,
    in which case what sits in Redis is UTF-8 JSON."""
    sender, receiver = make_layer(serializer_format="json"), make_layer(serializer_format="json")
    await sender.send("peek", MESSAGE)
    with redis_server.client() as r:
        (raw,) = r.lrange("asgi:c:{peek}", 0, -1)
    target, _expires, message = json.loads(raw)
    assert (target, message) == ("peek", MESSAGE)
    assert (
        await every_path(sender, receiver, dict(MESSAGE, pair=(1, 2)))
        == [
            dict(MESSAGE, pair=[1, 2])  # tuples arrive as lists, as with msgpack
        ]
        * 5
    )


async def test_json_refuses_bytes_at_send_on_every_path(make_layer):
    """JSON has no bytes (channels_redis's JSON serializer fails on them too): the sender is
    told, even for a channel of its own process, which never touches Redis."""
    sender, receiver = make_layer(serializer_format="json"), make_layer(serializer_format="json")
    own, theirs = await sender.new_channel(), await receiver.new_channel()
    await receiver.group_add("g", theirs)
    bad = {"type": "m", "blob": b"\x00"}
    for call in (
        sender.send(own, bad),
        sender.send(theirs, bad),
        sender.send("jobs", bad),
        sender.group_send("g", bad),
    ):
        with pytest.raises(UnserializableMessage, match="'json'"):
            await call
    # And the rules of every layer still hold: an int dict key (which json.dumps would
    # quietly turn into "1") is refused as on the in-memory layer.
    with pytest.raises(UnserializableMessage):
        await sender.send(own, {"type": "m", "d": {1: "one"}})
    await sender.send(theirs, {"type": "m", "ok": True})
    assert await receive(receiver, theirs) == {"type": "m", "ok": True}


async def test_json_with_encryption_on_top(make_layer, redis_server):
    """channels_redis applies ``symmetric_encryption_keys`` to whatever the serializer
    wrote; key rotation works as with msgpack (the first key encrypts, any decrypts)."""
    sender = make_layer(serializer_format="json", symmetric_encryption_keys=["k1"])
    receiver = make_layer(serializer_format="json", symmetric_encryption_keys=["k2", "k1"])
    await sender.send("secret", {"type": "m", "card": "4111"})
    with redis_server.client() as r:
        (raw,) = r.lrange("asgi:c:{secret}", 0, -1)
    assert b"4111" not in raw and b"card" not in raw
    with pytest.raises(ValueError):
        json.loads(raw)
    assert await receive(receiver, "secret") == {"type": "m", "card": "4111"}
    assert await every_path(sender, receiver, MESSAGE) == [MESSAGE] * 5


class TaggedJSON(BaseMessageSerializer):
    """A format of the test's own: JSON behind a marker, to see it is the one in use."""

    def as_bytes(self, envelope):
        return b"TAG1" + json.dumps(envelope).encode()

    def from_bytes(self, data):
        assert data[:4] == b"TAG1"
        return json.loads(data[4:])


@pytest.mark.parametrize("encrypted", [False, True])
async def test_a_registered_format_is_used(make_layer, redis_server, encrypted):
    """channels_redis lets users add formats to its serializer registry
    (``registry.register_serializer(format, serializer_class)``) and pick them with
    ``serializer_format``; encryption still goes on top."""
    registry.register_serializer("tagged-json", TaggedJSON)
    keys = ["s3cret"] if encrypted else None
    sender = make_layer(serializer_format="tagged-json", symmetric_encryption_keys=keys)
    receiver = make_layer(serializer_format="tagged-json", symmetric_encryption_keys=keys)
    await sender.send("peek", {"type": "m"})
    with redis_server.client() as r:
        (raw,) = r.lrange("asgi:c:{peek}", 0, -1)
    assert raw.startswith(b"TAG1") is not encrypted
    assert await receive(receiver, "peek") == {"type": "m"}
    assert await every_path(sender, receiver, MESSAGE) == [MESSAGE] * 5


def test_unknown_formats_and_bad_registrations_are_refused():
    with pytest.raises(SerializerDoesNotExist, match="'yaml'") as caught:
        RedisChannelLayer(serializer_format="yaml")
    assert isinstance(caught.value, KeyError) and isinstance(caught.value, ValueError)
    with pytest.raises(TypeError):
        registry.register_serializer("broken", object)  # no as_bytes/from_bytes
    with pytest.raises(TypeError):
        registry.register_serializer("instance", JSONSerializer())  # a class is wanted
    assert isinstance(registry.get_serializer("json"), JSONSerializer)


def clients(server) -> int:
    with server.client() as r:
        return len(r.client_list()) - 1  # not this inspecting connection


async def until_no_clients(server) -> int:
    # The server notices a closed connection a moment after the client closed it.
    deadline = asyncio.get_running_loop().time() + WAIT
    while clients(server) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)
    return clients(server)


async def test_close_pools_closes_the_connections_and_the_layer_still_works(fresh_redis_server):
    """channels_redis's ``async close_pools()`` closes the layer's connection pools (tests
    and shutdown code call it); the layer connects again when used afterwards."""
    layer = RedisChannelLayer(hosts=[fresh_redis_server.url])
    try:
        await layer.new_channel()
        await layer.send("jobs", {"type": "m"})
        assert await receive(layer, "jobs") == {"type": "m"}
        assert clients(fresh_redis_server) > 0
        await layer.close_pools()
        assert await until_no_clients(fresh_redis_server) == 0
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "again"})
        assert await receive(layer, channel) == {"type": "again"}
    finally:
        await layer.close()
