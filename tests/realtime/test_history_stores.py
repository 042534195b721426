"""History stores on their own: count and age bounds, epochs, on the in-memory layer, the IPC
layer and a real redis-server."""

from __future__ import annotations

import asyncio

import pytest

from switchboard.layers.inmemory import InMemoryChannelLayer


@pytest.fixture(params=["inmemory", "ipc", "redis"])
async def layer(request, tmp_path):
    if request.param == "inmemory":
        yield InMemoryChannelLayer()
        return
    if request.param == "ipc":
        from switchboard.layers.ipc import IPCChannelLayer

        # Two layers as two processes would be: the logs live in the first one's hub.
        hub, layer = (IPCChannelLayer(path=str(tmp_path / "rt")) for _ in range(2))
        await hub.new_channel()
        yield layer
        await layer.close()
        await hub.close()
        return
    from switchboard.layers.redis import RedisChannelLayer

    yield RedisChannelLayer(hosts=[request.getfixturevalue("redis_server").url])


async def test_offsets_count_bound_and_latest(layer):
    store = layer.history_store()
    positions = [await store.append("t", {"n": n}, 3, 60) for n in range(5)]
    assert [p.offset for p in positions] == [1, 2, 3, 4, 5]
    assert len({p.epoch for p in positions}) == 1
    latest = await store.latest("t", 10)
    assert latest.offset == 5 and [o for o, _ in latest.publications] == [3, 4, 5]
    assert [d for _, d in latest.publications] == [{"n": 2}, {"n": 3}, {"n": 4}]
    epoch = positions[0].epoch
    assert (await store.recover("t", epoch, 2, 100)).publications == [
        (3, {"n": 2}), (4, {"n": 3}), (5, {"n": 4}),
    ]  # fmt: skip
    assert not (await store.recover("t", epoch, 1, 100)).complete  # offset 2 was trimmed
    assert not (await store.recover("t", epoch, 2, 2)).complete  # more than the limit
    assert not (await store.recover("t", epoch, 6, 100)).complete  # ahead of the log
    assert not (await store.recover("t", "another", 5, 100)).complete
    up_to_date = await store.recover("t", epoch, 5, 100)
    assert up_to_date.complete and up_to_date.publications == []


async def test_age_bound(layer):
    store = layer.history_store()
    first = await store.append("aged", {"n": 0}, 100, 0.3)
    await asyncio.sleep(0.5)
    await store.append("aged", {"n": 1}, 100, 0.3)
    read = await store.recover("aged", first.epoch, 0, 100)
    assert not read.complete  # offset 1 is older than the ttl: gone, and said so
    read = await store.recover("aged", first.epoch, 1, 100)
    assert read.complete and read.publications == [(2, {"n": 1})]
    assert [o for o, _ in (await store.latest("aged", 10)).publications] == [2]
    await asyncio.sleep(0.5)
    assert (await store.latest("aged", 10)).publications == []  # all aged out
    assert (await store.recover("aged", first.epoch, 2, 100)).complete  # nothing missed


async def test_bad_arguments_and_unserializable_data(layer):
    store = layer.history_store()
    with pytest.raises(ValueError):
        await store.append("t", {"n": 1}, 0, 60)
    with pytest.raises(TypeError):
        await store.append("t", {"when": object()}, 10, 60)
    with pytest.raises(TypeError):
        await store.append("not a group name", {}, 10, 60)
