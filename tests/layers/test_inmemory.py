"""InMemoryChannelLayer: channel and group semantics, expiry, capacity and bounded memory."""

from __future__ import annotations

import asyncio
import re

import pytest

from switchboard.exceptions import ChannelFull
from switchboard.layers.inmemory import InMemoryChannelLayer


@pytest.fixture
async def layer():
    layer = InMemoryChannelLayer()
    yield layer
    await layer.flush()
    await layer.close()


async def test_send_then_receive(layer):
    await layer.send("test.channel", {"type": "test.message", "text": "hi"})
    assert await layer.receive("test.channel") == {"type": "test.message", "text": "hi"}


async def test_receive_waits_for_send(layer):
    receiving = asyncio.ensure_future(layer.receive("waiting"))
    await asyncio.sleep(0)
    assert not receiving.done()
    await layer.send("waiting", {"type": "x", "n": 1})
    assert await asyncio.wait_for(receiving, 1) == {"type": "x", "n": 1}
    assert layer.channels == {}


async def test_fifo_order(layer):
    for n in range(50):
        await layer.send("fifo", {"type": "m", "n": n})
    assert [(await layer.receive("fifo"))["n"] for _ in range(50)] == list(range(50))


async def test_each_message_goes_to_exactly_one_of_several_receivers(layer):
    receivers = [asyncio.ensure_future(layer.receive("shared")) for _ in range(5)]
    await asyncio.sleep(0)
    for n in range(5):
        await layer.send("shared", {"type": "m", "n": n})
    results = await asyncio.wait_for(asyncio.gather(*receivers), 1)
    # Longest-waiting receiver first.
    assert [r["n"] for r in results] == [0, 1, 2, 3, 4]


async def test_capacity_raises_channel_full_and_stores_nothing_more():
    layer = InMemoryChannelLayer(capacity=3)
    for n in range(3):
        await layer.send("small", {"type": "m", "n": n})
    with pytest.raises(ChannelFull):
        await layer.send("small", {"type": "m", "n": 3})
    assert [(await layer.receive("small"))["n"] for _ in range(3)] == [0, 1, 2]
    # Room again once read.
    await layer.send("small", {"type": "m", "n": 4})
    assert (await layer.receive("small"))["n"] == 4


async def test_per_channel_capacity_globs_and_regex():
    layer = InMemoryChannelLayer(
        capacity=5, channel_capacity={"http.request*": 1, re.compile(r"^big\."): 20}
    )
    await layer.send("http.request.body", {"type": "m"})
    with pytest.raises(ChannelFull):
        await layer.send("http.request.body", {"type": "m"})
    for _ in range(20):
        await layer.send("big.one", {"type": "m"})
    with pytest.raises(ChannelFull):
        await layer.send("big.one", {"type": "m"})
    for _ in range(5):
        await layer.send("other", {"type": "m"})
    with pytest.raises(ChannelFull):
        await layer.send("other", {"type": "m"})


async def test_messages_expire():
    layer = InMemoryChannelLayer(expiry=0.05)
    await layer.send("short", {"type": "old"})
    await asyncio.sleep(0.08)
    await layer.send("short", {"type": "new"})
    assert (await layer.receive("short"))["type"] == "new"
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.receive("short"), 0.05)


async def test_expired_messages_free_capacity():
    layer = InMemoryChannelLayer(expiry=0.05, capacity=1)
    await layer.send("c", {"type": "a"})
    await asyncio.sleep(0.08)
    await layer.send("c", {"type": "b"})  # Would raise ChannelFull if "a" still counted.
    assert (await layer.receive("c"))["type"] == "b"


async def test_group_send_fans_out_to_many(layer):
    channels = [await layer.new_channel() for _ in range(500)]
    for channel in channels:
        await layer.group_add("room", channel)
    await layer.group_send("room", {"type": "chat.message", "text": "hello"})
    for channel in channels:
        assert await layer.receive(channel) == {"type": "chat.message", "text": "hello"}


async def test_group_send_reaches_waiting_receivers(layer):
    await layer.group_add("g", "a")
    await layer.group_add("g", "b")
    waiting = [asyncio.ensure_future(layer.receive(c)) for c in ("a", "b")]
    await asyncio.sleep(0)
    await layer.group_send("g", {"type": "m"})
    assert await asyncio.wait_for(asyncio.gather(*waiting), 1) == [{"type": "m"}] * 2


async def test_group_send_skips_full_members():
    layer = InMemoryChannelLayer(capacity=1)
    await layer.group_add("g", "full")
    await layer.group_add("g", "empty")
    await layer.send("full", {"type": "first"})
    await layer.group_send("g", {"type": "broadcast"})  # Must not raise.
    assert (await layer.receive("full"))["type"] == "first"
    assert (await layer.receive("empty"))["type"] == "broadcast"


async def test_group_discard(layer):
    await layer.group_add("g", "stay")
    await layer.group_add("g", "leave")
    await layer.group_discard("g", "leave")
    await layer.group_discard("g", "never-joined")
    await layer.group_discard("no-such-group", "leave")
    await layer.group_send("g", {"type": "m"})
    assert await layer.receive("stay") == {"type": "m"}
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.receive("leave"), 0.05)
    await layer.group_discard("g", "stay")
    assert layer.groups == {}


async def test_group_membership_expires_and_group_add_renews():
    layer = InMemoryChannelLayer(group_expiry=0.1)
    await layer.group_add("g", "lapsed")
    await layer.group_add("g", "renewed")
    await asyncio.sleep(0.06)
    await layer.group_add("g", "renewed")
    await asyncio.sleep(0.06)
    await layer.group_send("g", {"type": "m"})
    assert await layer.receive("renewed") == {"type": "m"}
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.receive("lapsed"), 0.05)
    assert list(layer.groups["g"]) == ["renewed"]


async def test_flush_drops_messages_and_groups_but_keeps_waiters(layer):
    await layer.send("c", {"type": "m"})
    await layer.group_add("g", "c")
    waiting = asyncio.ensure_future(layer.receive("w"))
    await asyncio.sleep(0)
    await layer.flush()
    assert layer.groups == {}
    await layer.group_send("g", {"type": "after-flush"})
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.receive("c"), 0.05)
    await layer.send("w", {"type": "still-delivered"})
    assert (await asyncio.wait_for(waiting, 1))["type"] == "still-delivered"


async def test_new_channel_names_are_unique_and_valid(layer):
    names = {await layer.new_channel() for _ in range(2000)}
    assert len(names) == 2000
    for name in list(names)[:20]:
        assert name.startswith("specific.inmemory!")
        assert layer.require_valid_channel_name(name)
    custom = await layer.new_channel("websocket.send")
    assert custom.startswith("websocket.send.inmemory!")
    other = InMemoryChannelLayer()
    assert not names & {await other.new_channel() for _ in range(100)}


async def test_cancelled_receive_loses_no_message(layer):
    # Cancelled while waiting: nothing consumed.
    receiving = asyncio.ensure_future(layer.receive("c"))
    await asyncio.sleep(0)
    receiving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await receiving
    await layer.send("c", {"type": "m", "n": 1})
    assert (await layer.receive("c"))["n"] == 1

    # Cancelled after the message was handed over but before the receiver resumed.
    receiving = asyncio.ensure_future(layer.receive("c"))
    await asyncio.sleep(0)
    await layer.send("c", {"type": "m", "n": 2})
    await layer.send("c", {"type": "m", "n": 3})
    receiving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await receiving
    assert (await layer.receive("c"))["n"] == 2
    assert (await layer.receive("c"))["n"] == 3


async def test_cancelled_receive_passes_message_to_next_waiter(layer):
    first = asyncio.ensure_future(layer.receive("c"))
    second = asyncio.ensure_future(layer.receive("c"))
    await asyncio.sleep(0)
    await layer.send("c", {"type": "m"})
    first.cancel()
    assert await asyncio.wait_for(second, 1) == {"type": "m"}


async def test_receive_under_wait_for_timeouts_loses_nothing(layer):
    async def producer():
        for n in range(200):
            await layer.send("c", {"type": "m", "n": n})
            if n % 7 == 0:
                await asyncio.sleep(0.001)

    task = asyncio.ensure_future(producer())
    got: list[int] = []
    while len(got) < 200:
        try:
            got.append((await asyncio.wait_for(layer.receive("c"), 0.0005))["n"])
        except TimeoutError:
            pass
    await task
    assert got == list(range(200))


@pytest.mark.parametrize(
    "bad", ["", "has space", "a" * 100, "two!bangs!", "ünicode", 5, None, b"bytes"]
)
async def test_invalid_channel_names_rejected(layer, bad):
    with pytest.raises(TypeError):
        await layer.send(bad, {"type": "m"})
    with pytest.raises(TypeError):
        await layer.receive(bad)
    with pytest.raises(TypeError):
        await layer.group_add("g", bad)
    assert layer.channels == {}
    assert layer.groups == {}


@pytest.mark.parametrize("bad", ["", "bad!group", "with space", "g" * 100, 7])
async def test_invalid_group_names_rejected(layer, bad):
    with pytest.raises(TypeError):
        await layer.group_add(bad, "c")
    with pytest.raises(TypeError):
        await layer.group_send(bad, {"type": "m"})
    with pytest.raises(TypeError):
        await layer.group_discard(bad, "c")


@pytest.mark.parametrize("bad", [None, "text", ["type", "m"], {"type": 1}])
async def test_invalid_messages_rejected(layer, bad):
    with pytest.raises(TypeError):
        await layer.send("c", bad)
    await layer.group_add("g", "c")
    with pytest.raises(TypeError):
        await layer.group_send("g", bad)
    assert "c" not in layer.channels


async def test_group_members_share_one_copy_never_the_senders(layer):
    # As within one process on the Redis and IPC layers: decoded once, shared by the members
    # (received messages are read-only), and never the sender's own dict.
    message = {"type": "m", "items": [1, 2], "meta": {"k": "v"}, "text": "t"}
    await layer.group_add("g", "a")
    await layer.group_add("g", "b")
    await layer.group_send("g", message)
    message["items"].append("sender mutated")
    a = await layer.receive("a")
    b = await layer.receive("b")
    assert a == {"type": "m", "items": [1, 2], "meta": {"k": "v"}, "text": "t"}
    assert a is b and a is not message


async def test_a_direct_send_gives_the_receiver_its_own_copy(layer):
    message = {"type": "m", "items": [1, 2]}
    await layer.send("a", message)
    message["items"].append("sender mutated")
    assert await layer.receive("a") == {"type": "m", "items": [1, 2]}


async def test_unread_channels_leave_nothing_behind():
    layer = InMemoryChannelLayer(expiry=0.05)
    for n in range(10_000):
        await layer.send(f"abandoned.{n}", {"type": "m", "n": n})
    assert len(layer.channels) == 10_000
    await asyncio.sleep(0.08)
    layer.sweep()
    assert layer.channels == {}


async def test_periodic_sweep_runs_without_further_calls():
    layer = InMemoryChannelLayer(expiry=0.03, group_expiry=0.03)
    for n in range(1000):
        await layer.send(f"abandoned.{n}", {"type": "m"})
        await layer.group_add(f"group{n % 10}", f"abandoned.{n}")
    deadline = asyncio.get_running_loop().time() + 2
    while (layer.channels or layer.groups) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)
    assert layer.channels == {} and layer.groups == {}
    await layer.close()


async def test_channel_structures_removed_once_empty(layer):
    await layer.send("c", {"type": "m"})
    await layer.receive("c")
    waiting = asyncio.ensure_future(layer.receive("d"))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert layer.channels == {}


async def test_two_layers_do_not_interfere():
    first, second = InMemoryChannelLayer(), InMemoryChannelLayer()
    waiting = asyncio.ensure_future(second.receive("same.name"))
    await first.send("same.name", {"type": "first"})
    await asyncio.sleep(0.01)
    assert not waiting.done()
    await second.send("same.name", {"type": "second"})
    assert (await asyncio.wait_for(waiting, 1))["type"] == "second"
    assert (await first.receive("same.name"))["type"] == "first"


def test_layer_usable_from_successive_event_loops():
    layer = InMemoryChannelLayer(expiry=0.05)

    async def round_trip(n: int) -> dict:
        await layer.send("c", {"type": "m", "n": n})
        return await layer.receive("c")

    assert asyncio.run(round_trip(1))["n"] == 1
    # The sweep timer of the closed loop is abandoned; the new loop arms its own.
    assert asyncio.run(round_trip(2))["n"] == 2


async def test_unknown_config_option_rejected():
    with pytest.raises(TypeError):
        InMemoryChannelLayer(not_an_option=1)
    with pytest.raises(ValueError):
        InMemoryChannelLayer(capacity=0)
