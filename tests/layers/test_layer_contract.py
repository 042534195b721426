"""The channel layer contract, run on every layer: in-memory, IPC and Redis (``layers`` fixture).

Where a behaviour crosses processes, ``other`` is the backend as another process sees it (on
IPC a layer in a real other OS process). Layer-specific behaviour stays in each layer's tests.
"""

from __future__ import annotations

import asyncio

import pytest

from switchboard.exceptions import ChannelFull
from switchboard.layers.base import BaseChannelLayer
from switchboard.layers.codec import ChannelMessageTooLarge, UnserializableMessage

WAIT = 10  # seconds: generous, the machine is shared


async def receive(layer, channel: str, timeout: float = WAIT) -> dict:
    return await asyncio.wait_for(layer.receive(channel), timeout)


async def nothing_arrives(layer, channel: str, wait: float = 0.5) -> bool:
    try:
        await asyncio.wait_for(layer.receive(channel), wait)
    except TimeoutError:
        return True
    return False


# -- channels ----------------------------------------------------------------------------------


async def test_send_to_a_channel_of_another_process(layers):
    channel = await layers.other.new_channel()
    await layers.local.send(channel, {"type": "hello", "text": "hi", "n": 1, "raw": b"\x00"})
    assert await layers.other.receive(channel) == {
        "type": "hello",
        "text": "hi",
        "n": 1,
        "raw": b"\x00",
    }


async def test_messages_from_another_process_arrive_in_order(layers):
    channel = await layers.local.new_channel()
    for n in range(30):
        await layers.other.send(channel, {"type": "m", "n": n})
    assert [(await receive(layers.local, channel))["n"] for _ in range(30)] == list(range(30))


async def test_new_channel_names_are_unique_valid_and_keep_the_prefix(layers):
    names = {await layers.local.new_channel() for _ in range(50)}
    names |= {await layers.other.new_channel() for _ in range(5)}
    assert len(names) == 55
    for name in names:
        assert BaseChannelLayer.require_valid_channel_name(name)
    assert (await layers.local.new_channel("websocket.send")).startswith("websocket.send.")


async def test_worker_channel_message_sent_before_anyone_receives_is_kept(layers):
    channel = layers.name("jobs")
    await layers.other.send(channel, {"type": "job", "n": 1})
    assert await receive(layers.local, channel) == {"type": "job", "n": 1}


async def test_worker_channel_each_message_goes_to_one_receiver(layers):
    channel = layers.name("jobs")
    second = layers.make()
    got: list[int] = []

    async def drain(layer) -> None:
        while True:
            got.append((await layer.receive(channel))["n"])

    readers = [asyncio.ensure_future(drain(layers.local)), asyncio.ensure_future(drain(second))]
    await asyncio.sleep(0.2)
    for n in range(20):
        await layers.other.send(channel, {"type": "job", "n": n})
    deadline = asyncio.get_running_loop().time() + WAIT
    while len(got) < 20 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)  # a duplicate would show up now
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    assert sorted(got) == list(range(20))


async def test_receiver_sees_its_own_copy(layers):
    channel = await layers.local.new_channel()
    message = {"type": "m", "items": [1, 2]}
    await layers.local.send(channel, message)
    message["items"].append(3)  # the sender changing it afterwards changes nothing received
    assert (await receive(layers.local, channel))["items"] == [1, 2]


async def test_cancelled_receive_loses_nothing(layers):
    channel = await layers.local.new_channel()
    waiting = asyncio.ensure_future(layers.local.receive(channel))
    await asyncio.sleep(0.05)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    await layers.other.send(channel, {"type": "m", "n": 1})
    assert (await receive(layers.local, channel))["n"] == 1


async def test_receive_future_resolves_with_the_next_message(layers):
    channel = await layers.local.new_channel()
    future = layers.local.receive_future(channel)
    await asyncio.sleep(0.05)
    assert not future.done()
    await layers.other.send(channel, {"type": "m", "n": 7})
    assert (await asyncio.wait_for(future, WAIT))["n"] == 7


# -- capacity and expiry -------------------------------------------------------------------


async def test_a_full_channel_raises_channel_full_and_keeps_what_it_holds(layers):
    layer = layers.make(capacity=3)
    channel = await layer.new_channel()
    for n in range(3):
        await layer.send(channel, {"type": "m", "n": n})
    with pytest.raises(ChannelFull):
        await layer.send(channel, {"type": "m", "n": 3})
    assert [(await receive(layer, channel))["n"] for _ in range(3)] == [0, 1, 2]
    await layer.send(channel, {"type": "m", "n": 4})  # room again once read
    assert (await receive(layer, channel))["n"] == 4


async def test_a_full_worker_channel_nobody_receives_raises_channel_full(layers):
    layer = layers.make(capacity=2)
    channel = layers.name("queue")
    await layer.send(channel, {"type": "m", "n": 0})
    await layer.send(channel, {"type": "m", "n": 1})
    with pytest.raises(ChannelFull):
        await layer.send(channel, {"type": "m", "n": 2})
    assert [(await receive(layer, channel))["n"] for _ in range(2)] == [0, 1]


async def test_channel_capacity_patterns_override_the_default(layers):
    layer = layers.make(capacity=100, channel_capacity={"tiny.*": 1})
    channel = await layer.new_channel("tiny")
    await layer.send(channel, {"type": "m"})
    with pytest.raises(ChannelFull):
        await layer.send(channel, {"type": "m"})


async def test_messages_unread_past_expiry_are_dropped_and_counted(layers):
    sender = layers.make(expiry=1)
    receiver = layers.make(expiry=1) if layers.kind != "inmemory" else sender
    channel = await receiver.new_channel()
    await sender.send(channel, {"type": "old"})
    await asyncio.sleep(1.3)
    await sender.send(channel, {"type": "new"})
    assert (await receive(receiver, channel))["type"] == "new"
    assert receiver.drops.totals["expired"] >= 1


# -- groups --------------------------------------------------------------------------------


async def test_group_send_reaches_members_in_every_process(layers):
    group = layers.name("room")
    mine = [await layers.local.new_channel() for _ in range(3)]
    theirs = [await layers.other.new_channel() for _ in range(2)]
    for channel in mine:
        await layers.local.group_add(group, channel)
    for channel in theirs:
        await layers.other.group_add(group, channel)
    await layers.local.group_send(group, {"type": "chat", "text": "from local"})
    await layers.other.group_send(group, {"type": "chat", "text": "from other"})
    for channel in mine:
        texts = {(await receive(layers.local, channel))["text"] for _ in range(2)}
        assert texts == {"from local", "from other"}
    for channel in theirs:
        texts = {(await layers.other.receive(channel))["text"] for _ in range(2)}
        assert texts == {"from local", "from other"}


async def test_group_discard_and_release_channel_stop_deliveries(layers):
    group = layers.name("room")
    stays, discarded, released = [await layers.local.new_channel() for _ in range(3)]
    for channel in (stays, discarded, released):
        await layers.local.group_add(group, channel)
    await layers.local.group_discard(group, discarded)
    await layers.local.release_channel(released)
    await layers.other.group_send(group, {"type": "chat"})
    assert (await receive(layers.local, stays))["type"] == "chat"
    assert await nothing_arrives(layers.local, discarded)
    assert await nothing_arrives(layers.local, released, wait=0.1)


async def test_group_send_to_a_group_without_members_is_fine(layers):
    await layers.local.group_send(layers.name("empty"), {"type": "nobody"})
    await layers.other.group_send(layers.name("empty"), {"type": "nobody"})


async def test_group_add_again_does_not_duplicate_deliveries(layers):
    group = layers.name("room")
    channel = await layers.local.new_channel()
    await layers.local.group_add(group, channel)
    await layers.local.group_add(group, channel)
    await layers.other.group_send(group, {"type": "once"})
    assert (await receive(layers.local, channel))["type"] == "once"
    assert await nothing_arrives(layers.local, channel, wait=0.3)


async def test_memberships_expire_after_group_expiry(layers):
    layer = layers.make(group_expiry=1)
    group = layers.name("room")
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    await asyncio.sleep(1.3)
    await layers.other.group_send(group, {"type": "late"})
    await layer.group_send(group, {"type": "late"})
    assert await nothing_arrives(layer, channel)


async def test_a_full_member_misses_the_group_message_and_it_is_counted(layers):
    layer = layers.make(capacity=1)
    group = layers.name("room")
    slow, fast = await layer.new_channel(), await layer.new_channel()
    await layer.group_add(group, slow)
    await layer.group_add(group, fast)
    await layer.group_send(group, {"type": "m", "n": 1})
    assert (await receive(layer, fast))["n"] == 1
    await layer.group_send(group, {"type": "m", "n": 2})
    assert (await receive(layer, fast))["n"] == 2
    deadline = asyncio.get_running_loop().time() + WAIT
    while layer.drops.totals["full"] < 1 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)
    assert layer.drops.totals["full"] == 1
    assert (await receive(layer, slow))["n"] == 1


async def test_flush_drops_messages_and_groups(layers):
    group = layers.name("room")
    channel = await layers.local.new_channel()
    await layers.local.group_add(group, channel)
    await layers.local.send(channel, {"type": "before"})
    await layers.local.flush()
    await layers.local.group_send(group, {"type": "after-flush"})
    assert await nothing_arrives(layers.local, channel)


# -- message rules (same codec and limits on every layer, checked at send) ----------------------


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("not a dict", TypeError),
        ({"type": 1}, TypeError),  # present, a "type" must be able to name a handler
        ({"type": "m", "when": object()}, UnserializableMessage),
        ({"type": "m", 1: "int key"}, UnserializableMessage),
        ({"type": "m", "blob": b"x" * 2048}, ChannelMessageTooLarge),
    ],
)
async def test_bad_messages_fail_at_send_for_channels_and_groups(layers, message, error):
    layer = layers.make(max_message_size=1024)
    channel = await layers.other.new_channel()
    with pytest.raises(error):
        await layer.send(channel, message)
    with pytest.raises(error):
        await layer.send(layers.name("jobs"), message)
    with pytest.raises(error):
        await layer.group_send(layers.name("room"), message)


async def test_messages_without_a_type_are_carried(layers):
    """Channels' layers ask only for a dict: its in-memory layer and channels_redis (core and
    pubsub) check ``isinstance(message, dict)`` at ``send``/``group_send`` and nothing about
    ``"type"``, which only a consumer dispatching the message needs. Code that reads a channel
    itself (a worker loop calling ``receive``) may send type-less messages, on every layer, to
    every kind of channel."""
    own = await layers.local.new_channel()
    theirs = await layers.other.new_channel()
    worker = layers.name("jobs")
    group = layers.name("room")
    await layers.local.group_add(group, own)
    await layers.other.group_add(group, theirs)

    await layers.local.send(own, {"n": 1})
    await layers.local.send(theirs, {"n": 2})
    await layers.local.send(worker, {"n": 3})
    await layers.local.group_send(group, {"n": 4, "raw": b"\x00"})
    assert await receive(layers.local, own) == {"n": 1}
    assert await layers.other.receive(theirs) == {"n": 2}
    assert await receive(layers.local, worker) == {"n": 3}
    assert await receive(layers.local, own) == {"n": 4, "raw": b"\x00"}
    assert await layers.other.receive(theirs) == {"n": 4, "raw": b"\x00"}
    assert await layers.local.send(own, {}) is None  # even an empty dict
    assert await receive(layers.local, own) == {}


@pytest.mark.parametrize("name", ["", "spaces here", "a" * 100, "two!bangs!", 7])
async def test_bad_names_are_refused(layers, name):
    with pytest.raises(TypeError):
        await layers.local.send(name, {"type": "m"})
    with pytest.raises(TypeError):
        await layers.local.group_add("room", name)
    with pytest.raises(TypeError):
        await layers.local.group_send(name if name != "two!bangs!" else "a!b", {"type": "m"})


async def test_the_old_name_checks_still_work_and_warn(layers):
    """Channels 4.2.1 renamed ``valid_channel_name``/``valid_group_name`` to
    ``require_valid_channel_name``/``require_valid_group_name`` without notice, and 4.2.2 put
    the old names back as aliases that raise a ``DeprecationWarning`` (release notes 4.2.2):
    True for a good name, ``TypeError`` for a bad one. Layers and code written against older
    Channels keep working, warned."""
    layer = layers.local
    with pytest.warns(DeprecationWarning, match="valid_channel_name is deprecated"):
        assert layer.valid_channel_name("chat.abc!1") is True
    with pytest.warns(DeprecationWarning, match="valid_group_name is deprecated"):
        assert layer.valid_group_name("room-1") is True
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError):
        layer.valid_channel_name("two!bangs!")
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError):
        layer.valid_group_name("no!bang")
    # The warning points at the caller, so filters by module and -W error find it.
    with pytest.warns(DeprecationWarning) as caught:
        layer.valid_group_name("room")
    assert caught[0].filename == __file__
