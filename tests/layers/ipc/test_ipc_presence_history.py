"""Presence and history on the IPC layer: several layers (each its own node, token and hub link,
as separate processes would have) meeting in one runtime directory over real Unix sockets.
Real OS processes, SIGKILL and the server: tests/realtime/test_realtime_ipc.py."""

from __future__ import annotations

import asyncio
import time

import pytest

from switchboard.layers.ipc import IPCChannelLayer
from switchboard.layers.ipc.presence import PresenceTable
from switchboard.layers.stores.presence import PresenceEntry, presence_group

WAIT = 15


async def _close_all(*layers: IPCChannelLayer) -> None:
    for layer in layers:
        await layer.close()


def _hub_is(layer: IPCChannelLayer) -> bool:
    node = layer._nodes.get(asyncio.get_running_loop())
    return node is not None and node.hub is not None


async def _keys(layer: IPCChannelLayer, topic: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entry in await layer.presence_store().list(topic):
        counts[entry.key] = counts.get(entry.key, 0) + 1
    return counts


async def _watch(layer: IPCChannelLayer, topic: str) -> str:
    channel = await layer.new_channel()
    await layer.group_add(presence_group(topic), channel)
    return channel


async def _diff(layer: IPCChannelLayer, channel: str) -> dict:
    return await asyncio.wait_for(layer.receive(channel), WAIT)


def test_presence_table_owns_refs_by_token():
    table = PresenceTable()
    a1, a2 = PresenceEntry("r1", "alice", {}), PresenceEntry("r2", "alice", {"d": 1})
    table.put("A", "room", a1)
    table.put("B", "room", a2)
    assert {e.ref for e in table.list("room")} == {"r1", "r2"}
    # Re-tracking a ref moves it to its new owner; one entry per ref.
    assert table.put("B", "room", PresenceEntry("r1", "alice", {"x": 1})) == a1
    assert table.tokens() == ["B"]
    copy = table.copy()
    assert sorted(e.ref for _, e in table.remove("B")) == ["r1", "r2"]
    assert table.list("room") == [] and table.tokens() == []
    assert len(copy.list("room")) == 2  # a copy is independent
    # set() replaces a token's entries and reports only what is new or changed.
    new = copy.set("B", [("room", a2), ("other", PresenceEntry("r3", "bob", {}))])
    assert [(t, e.ref) for t, e in new] == [("other", "r3")]
    assert [e.ref for e in copy.list("room")] == ["r2"]


async def test_presence_across_layers_listed_once_with_diffs(tmp_path):
    path = str(tmp_path / "rt")
    a, b, c = (IPCChannelLayer(path=path) for _ in range(3))
    try:
        watch = await _watch(c, "room")
        await a.presence_store().track("room", "ra", "alice", {"where": "a"})
        assert await _keys(b, "room") == {"alice": 1}  # track returned: every replica has it
        diff = await _diff(c, watch)
        assert diff["joins"]["alice"]["metas"] == [{"where": "a", "ref": "ra"}]
        await b.presence_store().track("room", "rb", "alice", {"where": "b"})
        await b.presence_store().track("room", "rc", "carol", {})
        for layer in (a, b, c):
            assert await _keys(layer, "room") == {"alice": 2, "carol": 1}
        await _diff(c, watch), await _diff(c, watch)
        # A meta update replaces the entry: still one per connection.
        await a.presence_store().track("room", "ra", "alice", {"where": "a2"})
        diff = await _diff(c, watch)
        assert diff["joins"]["alice"]["metas"][0]["where"] == "a2"
        assert diff["leaves"]["alice"]["metas"][0]["where"] == "a"
        assert await _keys(c, "room") == {"alice": 2, "carol": 1}
        await b.presence_store().untrack("room", "rc")
        assert set((await _diff(c, watch))["leaves"]) == {"carol"}
        assert await _keys(a, "room") == {"alice": 2}
        await b.presence_store().untrack("room", "rc")  # not tracked any more: nothing
        await a.presence_store().untrack("room", "nobody")
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(c.receive(watch), 0.3)
    finally:
        await _close_all(a, b, c)


async def test_a_layer_that_leaves_has_its_entries_dropped_and_announced_once(tmp_path):
    path = str(tmp_path / "rt")
    hub, other, watcher = (IPCChannelLayer(path=path) for _ in range(3))
    try:
        await hub.presence_store().track("room", "h", "hal", {})  # first: holds the hub
        assert _hub_is(hub)
        watch = await _watch(watcher, "room")
        await other.presence_store().track("room", "o", "olga", {})
        await _diff(watcher, watch)
        await other.close()  # its hub connection ends without any untrack
        diff = await _diff(watcher, watch)
        assert set(diff["leaves"]) == {"olga"} and not diff["joins"]
        assert await _keys(watcher, "room") == {"hal": 1}
        with pytest.raises(asyncio.TimeoutError):  # once
            await asyncio.wait_for(watcher.receive(watch), 0.5)
    finally:
        await _close_all(hub, other, watcher)


async def test_hub_handover_rebuilds_presence_and_drops_the_old_hubs_entries(tmp_path):
    path = str(tmp_path / "rt")
    hub, a, b = (IPCChannelLayer(path=path, presence_timeout=0.8) for _ in range(3))
    try:
        await hub.presence_store().track("room", "h", "hal", {})
        assert _hub_is(hub)
        await a.presence_store().track("room", "a", "alice", {})
        await b.presence_store().track("room", "b", "bob", {})
        watch = await _watch(b, "room")
        # The hub's layer closes without untracking. The connections the closing hub ends are
        # handed to the next hub, not processes leaving: no leave for them. Its own process
        # never says hello to the next hub, which declares it gone after presence_timeout
        # (as when it is killed: tests/realtime/test_realtime_ipc.py).
        await hub.close()
        closed = time.monotonic()
        diff = await _diff(b, watch)
        took = time.monotonic() - closed
        assert set(diff["leaves"]) == {"hal"} and not diff["joins"], diff
        assert 0.8 * 0.5 < took < 0.8 + 5, took
        for layer in (a, b):
            assert await _keys(layer, "room") == {"alice": 1, "bob": 1}
        with pytest.raises(asyncio.TimeoutError):  # announced once, even after the grace
            await asyncio.wait_for(b.receive(watch), 1.5)
        # The new hub's table was rebuilt from the processes themselves: a newcomer sees it.
        late = IPCChannelLayer(path=path)
        try:
            assert await _keys(late, "room") == {"alice": 1, "bob": 1}
        finally:
            await late.close()
        await a.presence_store().untrack("room", "a")
        assert set((await _diff(b, watch))["leaves"]) == {"alice"}
    finally:
        await _close_all(hub, a, b)


async def test_history_offsets_shared_by_layers_and_a_new_epoch_after_the_hub(tmp_path):
    path = str(tmp_path / "rt")
    hub, a, b = (IPCChannelLayer(path=path) for _ in range(3))
    try:
        await hub.new_channel()
        assert _hub_is(hub)
        positions = []
        for n in range(6):
            store = (a, b)[n % 2].history_store()
            positions.append(await store.append("t", {"n": n}, 100, 60))
        assert [p.offset for p in positions] == [1, 2, 3, 4, 5, 6]
        epoch = positions[0].epoch
        assert {p.epoch for p in positions} == {epoch}
        read = await b.history_store().recover("t", epoch, 2, 100)
        assert read.complete and read.publications == [(o, {"n": o - 1}) for o in range(3, 7)]
        assert [o for o, _ in (await a.history_store().latest("t", 2)).publications] == [5, 6]

        await hub.close()  # the logs were in its memory
        read = await a.history_store().recover("t", epoch, 6, 100)
        assert not read.complete and read.epoch != epoch  # said, never papered over
        position = await b.history_store().append("t", {"n": 6}, 100, 60)
        assert position.epoch == read.epoch and position.offset == 1
    finally:
        await _close_all(hub, a, b)


async def test_request_in_flight_when_the_hub_goes_is_asked_again(tmp_path, monkeypatch):
    path = str(tmp_path / "rt")
    hub, a = IPCChannelLayer(path=path), IPCChannelLayer(path=path)
    try:
        await hub.new_channel()
        await a.history_store().append("t", {"n": 0}, 100, 60)
        hub_node = hub._nodes[asyncio.get_running_loop()]
        # The hub stops answering history, then goes: the append must reach the next hub.
        monkeypatch.setattr(hub_node.hub.history, "answer", lambda frame: asyncio.sleep(3600))
        appending = asyncio.ensure_future(a.history_store().append("t", {"n": 1}, 100, 60))
        await asyncio.sleep(0.2)
        assert not appending.done()
        await hub.close()
        position = await asyncio.wait_for(appending, WAIT)
        assert position.offset == 1  # the new hub's log: a new epoch
        read = await a.history_store().latest("t", 10)
        assert read.publications == [(1, {"n": 1})] and read.epoch == position.epoch
    finally:
        await _close_all(hub, a)
