"""Presence and recovery on the IPC layer with real server processes (issue 14).

Each test starts ``switchboard serve tests.realtime.site:application`` processes sharing one IPC
runtime directory (tests/realtime/servers.py) and talks to them over WebSockets, as the Redis
versions in test_realtime_processes.py do. The first process a client reaches holds the hub
(its pid is in ``hub.lock``); killing it with SIGKILL is the hub failover case.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.realtime.recovery import away_while_100_are_sent_then_back_on, pubs, subscribe
from tests.realtime.servers import Client, SiteServer

PRESENCE_TIMEOUT = 1.5  # seconds a new hub waits for the processes it inherited


@pytest.fixture
def runtime(tmp_path) -> Path:
    return tmp_path / "rt"


@pytest.fixture
def start_server(tmp_path, runtime) -> Iterator[Callable[..., SiteServer]]:
    servers: list[SiteServer] = []

    def start(name: str, **env: str) -> SiteServer:
        env.setdefault("RT_PRESENCE_TIMEOUT", str(PRESENCE_TIMEOUT))
        server = SiteServer(tmp_path, name, RT_IPC_PATH=str(runtime), **env)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


def hub_pid(runtime: Path) -> int | None:
    try:
        text = (runtime / "hub.lock").read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text else None


def _counts(state: dict) -> dict[str, int]:
    return {key: len(value["metas"]) for key, value in state.items() if key != "probe"}


async def _listed(server: SiteServer) -> dict[str, int]:
    """``{user: connections}`` as a new client of ``server`` is told (itself left out)."""
    probe = await Client.open(server, "probe")
    try:
        await probe.send({"sb": "presence", "topic": "room"})
        return _counts((await probe.until(lambda f: f.get("sb") == "presence_state"))["state"])
    finally:
        await probe.close()


async def _wait_listed(server: SiteServer, expected: dict[str, int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (listed := await _listed(server)) != expected:
        assert time.monotonic() < deadline, f"listed {listed}, expected {expected}"
        await asyncio.sleep(0.1)


def _leaves(frame: dict) -> dict[str, int]:
    if frame.get("sb") != "presence_diff":
        return {}
    return _counts(frame["leaves"])


async def _collect_leaves(client: Client, expected: dict[str, int], timeout: float) -> None:
    """Wait for leave diffs adding up to exactly ``expected`` (they may come as several)."""
    gone: dict[str, int] = {}
    while gone != expected:
        frame = await client.until(lambda f: bool(_leaves(f)), timeout)
        for key, count in _leaves(frame).items():
            gone[key] = gone.get(key, 0) + count
        assert all(gone[k] <= expected.get(k, 0) for k in gone), f"{gone} > {expected}"


async def _no_more_leaves(client: Client, seconds: float) -> None:
    with pytest.raises(asyncio.TimeoutError):
        frame = await client.until(lambda f: bool(_leaves(f)), seconds)
        pytest.fail(f"a leave announced twice: {frame}")


async def test_presence_across_two_processes_and_a_sigkilled_one_disappears(start_server, runtime):
    a = start_server("a")
    alice = await Client.open(a, "alice")
    await alice.send({"sb": "presence", "topic": "room"})
    state = await alice.until(lambda f: f.get("sb") == "presence_state")
    assert _counts(state["state"]) == {"alice": 1}
    assert hub_pid(runtime) == a.process.pid

    b = start_server("b")
    bob = await Client.open(b, "bob")
    diff = await alice.until(lambda f: f.get("sb") == "presence_diff" and "bob" in f["joins"])
    assert diff["joins"]["bob"]["metas"][0]["pid"] == b.process.pid
    # Alice again, from the other process: one user, two connections, nobody counted twice.
    await Client.open(b, "alice")  # dies with process b below
    await alice.until(lambda f: f.get("sb") == "presence_diff" and "alice" in f["joins"])
    for server in (a, b):
        assert await _listed(server) == {"alice": 2, "bob": 1}
    await bob.send({"sb": "presence", "topic": "room"})
    state = await bob.until(lambda f: f.get("sb") == "presence_state")
    assert _counts(state["state"]) == {"alice": 2, "bob": 1}

    b.kill()  # no untrack, no goodbye: its hub connection ending is all that tells
    killed = time.monotonic()
    await _collect_leaves(alice, {"alice": 1, "bob": 1}, 15)
    # Seen at once (the kernel closes a dead process's sockets); room for a slow machine.
    assert time.monotonic() - killed < 3, time.monotonic() - killed
    await _no_more_leaves(alice, 1.0)
    assert await _listed(a) == {"alice": 1}
    await alice.close()
    await _wait_listed(a, {}, 10)


async def test_hub_sigkilled_presence_rebuilt_and_history_resyncs_with_a_new_epoch(
    start_server, runtime
):
    a = start_server("a")
    hal = await Client.open(a, "hal")  # a's layer starts first: a holds the hub
    assert hub_pid(runtime) == a.process.pid
    b = start_server("b")
    watcher = await Client.open(b, "watcher")
    await watcher.send({"sb": "presence", "topic": "room"})
    state = await watcher.until(lambda f: f.get("sb") == "presence_state")
    assert _counts(state["state"]) == {"hal": 1, "watcher": 1}
    subscribed = await subscribe(watcher)
    away = await Client.open(b, "away")
    await subscribe(away)
    writer = await Client.open(b, "writer")
    assert await writer.publish({"n": 0}) == subscribed["offset"] + 1
    (pub,) = await pubs(watcher, 1)
    (away_pub,) = await pubs(away, 1)
    epoch = pub["epoch"]
    await away.close()
    await _collect_leaves(watcher, {"away": 1}, 10)
    assert await _listed(b) == {"hal": 1, "watcher": 1, "writer": 1}
    del hal  # dies with its process

    a.kill()  # the hub's process: b takes the hub over with its replica of presence
    killed = time.monotonic()
    await _collect_leaves(watcher, {"hal": 1}, 15)
    took = time.monotonic() - killed
    # Declared gone once the inherited processes had their presence_timeout to come back.
    assert PRESENCE_TIMEOUT * 0.5 < took < PRESENCE_TIMEOUT + 5, took
    await _no_more_leaves(watcher, PRESENCE_TIMEOUT)
    assert hub_pid(runtime) == b.process.pid
    assert await _listed(b) == {"watcher": 1, "writer": 1}

    # The history was in the dead hub's memory: the next publication starts a new epoch, and
    # the connected subscriber is told to resynchronise before it.
    assert await writer.publish({"n": 1}) == 1
    resync = await watcher.until(lambda f: f.get("sb") in ("resync", "pub"))
    assert resync["sb"] == "resync" and resync["epoch"] != epoch and resync["offset"] == 0
    (pub,) = await pubs(watcher, 1)
    assert pub["epoch"] == resync["epoch"] and pub["offset"] == 1 and pub["data"] == {"n": 1}
    # A client back with an offset of the old epoch: recovered false, never old offsets.
    again = await Client.open(b, "away")
    subscribed = await subscribe(again, epoch=away_pub["epoch"], offset=away_pub["offset"])
    assert subscribed["recovered"] is False and subscribed["epoch"] == pub["epoch"]

    # The killed process comes back: it joins the rebuilt mesh and sees everyone.
    a.start()
    assert await _listed(a) == {"watcher": 1, "writer": 1, "away": 1}
    for client in (again, writer, watcher):
        await client.close()
    await _wait_listed(a, {}, 10)


async def test_client_away_while_100_are_sent_recovers_all_in_order_on_another_process(
    start_server,
):
    await away_while_100_are_sent_then_back_on(start_server("a"), start_server("b"))
