"""The in-memory layer accepts exactly the messages the Redis layer can carry, and says so at
send time: unserializable values and oversized messages fail in the sender's hands."""

from __future__ import annotations

import asyncio
import datetime

import pytest

from switchboard.exceptions import MessageTooLarge
from switchboard.layers import ChannelMessageTooLarge, UnserializableMessage
from switchboard.layers.codec import DEFAULT_MAX_MESSAGE_SIZE, MessageCodec
from switchboard.layers.inmemory import InMemoryChannelLayer

# Values Redis cannot carry (or a receiving process could not decode).
UNCARRIABLE = {
    "datetime": datetime.datetime(2024, 1, 1),
    "set": {1, 2},
    "object": object(),
    "int key": {1: "one"},
    "tuple key": {(1, 2): "pair"},
    "huge int": 2**70,
    "nested datetime": {"when": [datetime.date(2024, 1, 1)]},
}


@pytest.mark.parametrize("value", UNCARRIABLE.values(), ids=UNCARRIABLE.keys())
async def test_uncarriable_values_fail_at_send_and_group_send(value):
    layer = InMemoryChannelLayer()
    with pytest.raises(UnserializableMessage):
        await layer.send("c", {"type": "m", "value": value})
    with pytest.raises(UnserializableMessage):
        await layer.group_send("empty-group", {"type": "m", "value": value})
    await layer.group_add("g", "c")
    with pytest.raises(UnserializableMessage):
        await layer.group_send("g", {"type": "m", "value": value})
    assert "c" not in layer.channels  # nothing was queued


async def test_receivers_get_what_a_remote_process_would():
    layer = InMemoryChannelLayer()
    message = {"type": "m", "t": (1, "a"), "b": b"\x00", "n": None, "f": 1.5, "k": {b"raw": 1}}
    await layer.send("c", message)
    assert await layer.receive("c") == {
        "type": "m",
        "t": [1, "a"],
        "b": b"\x00",
        "n": None,
        "f": 1.5,
        "k": {b"raw": 1},
    }


async def test_max_message_size_is_checked_at_send():
    layer = InMemoryChannelLayer(max_message_size=1000)
    await layer.group_add("g", "c")
    await layer.send("c", {"type": "m", "text": "x" * 900})
    for call in (
        layer.send("c", {"type": "m", "text": "x" * 1000}),
        layer.group_send("g", {"type": "m", "text": "x" * 1000}),
    ):
        with pytest.raises(ChannelMessageTooLarge) as caught:
            await call
        assert caught.value.limit == 1000 and caught.value.size > 1000
        assert isinstance(caught.value, (MessageTooLarge, ValueError))
    assert (await layer.receive("c"))["text"] == "x" * 900
    assert await _nothing_on(layer, "c")


async def test_default_limit_and_no_limit():
    assert InMemoryChannelLayer().max_message_size == DEFAULT_MAX_MESSAGE_SIZE == 2 * 1024 * 1024
    big = {"type": "m", "blob": b"x" * (DEFAULT_MAX_MESSAGE_SIZE + 1)}
    with pytest.raises(ChannelMessageTooLarge):
        await InMemoryChannelLayer().send("c", big)
    unlimited = InMemoryChannelLayer(max_message_size=None)
    await unlimited.send("c", big)
    assert len((await unlimited.receive("c"))["blob"]) == DEFAULT_MAX_MESSAGE_SIZE + 1
    with pytest.raises(ValueError):
        InMemoryChannelLayer(max_message_size=0)


def test_codec_round_trips_and_counts_the_encoded_size():
    codec = MessageCodec(max_message_size=23)
    data = codec.encode({"type": "é" * 8})  # map header, "type", 16 bytes of UTF-8 + header
    assert len(data) == 1 + 5 + 1 + 16 and codec.decode(data) == {"type": "é" * 8}
    with pytest.raises(ChannelMessageTooLarge):
        codec.encode({"type": "é" * 9})


async def _nothing_on(layer, channel) -> bool:
    try:
        await asyncio.wait_for(layer.receive(channel), 0.05)
    except TimeoutError:
        return True
    return False
