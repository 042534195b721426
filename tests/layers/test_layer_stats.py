"""The counters a layer keeps for monitoring (``layer.stats``, ``queued_messages()``), on the
in-memory layer, and what the Prometheus collector makes of them (the Redis layer's are in
redis/test_redis_stats.py)."""

from __future__ import annotations

import threading

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from switchboard.exceptions import ChannelFull
from switchboard.layers.inmemory import InMemoryChannelLayer
from switchboard.metrics.collectors import LayerCollector


def scraped(layers: dict) -> dict[tuple[str, tuple], float]:
    registry = CollectorRegistry()
    registry.register(LayerCollector(lambda: layers))
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_sends_fanout_drops_and_queue_depth_are_counted():
    layer = InMemoryChannelLayer(capacity=2)
    full, other = await layer.new_channel(), await layer.new_channel()
    await layer.send(full, {"type": "m"})
    await layer.send(full, {"type": "m"})
    with pytest.raises(ChannelFull):
        await layer.send(full, {"type": "m"})  # refused: not a send, not a drop
    assert (layer.stats.sends, layer.queued_messages()) == (2, 2)

    for channel in (full, other):
        await layer.group_add("room", channel)
    await layer.group_send("room", {"type": "g"})  # the full member misses it
    await layer.group_send("empty-room", {"type": "g"})
    assert layer.stats.as_dict() == {
        "fanout_deliveries": 1,
        "group_sends": 2,
        "reconnects": 0,
        "sends": 2,
    }
    assert layer.drops.totals["full"] == 1
    assert layer.queued_messages() == 3
    await layer.receive(full)
    await layer.receive(other)
    assert layer.queued_messages() == 1

    metrics = scraped({"default": layer})
    key = (("layer", "default"),)
    assert metrics[("switchboard_layer_sends_total", key)] == 2
    assert metrics[("switchboard_layer_group_sends_total", key)] == 2
    assert metrics[("switchboard_layer_fanout_deliveries_total", key)] == 1
    assert metrics[("switchboard_layer_drops_total", (*key, ("reason", "full")))] == 1
    assert metrics[("switchboard_layer_drops_total", (*key, ("reason", "expired")))] == 0
    assert metrics[("switchboard_layer_queue_depth", key)] == 1
    assert metrics[("switchboard_layer_reconnects_total", key)] == 0


async def test_a_message_handed_to_a_waiting_receiver_is_a_fanout_delivery_not_queued():
    layer = InMemoryChannelLayer()
    channel = await layer.new_channel()
    await layer.group_add("room", channel)
    waiting = layer.receive_future(channel)
    await layer.group_send("room", {"type": "g"})
    assert (await waiting)["type"] == "g"
    assert layer.stats.fanout_deliveries == 1
    assert layer.queued_messages() == 0


async def test_queue_depth_can_be_read_from_another_thread_while_channels_come_and_go():
    # A scrape runs in the metrics endpoint's thread while the loop adds and removes channels.
    layer = InMemoryChannelLayer(capacity=10)
    stop = threading.Event()
    errors: list[BaseException] = []

    def scrape() -> None:
        while not stop.is_set():
            try:
                layer.queued_messages()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                return

    reader = threading.Thread(target=scrape)
    reader.start()
    try:
        for round_ in range(300):
            names = [f"c{round_}.{i}" for i in range(20)]
            for name in names:
                await layer.send(name, {"type": "m"})
            for name in names:
                await layer.receive(name)
    finally:
        stop.set()
        reader.join()
    assert errors == []
