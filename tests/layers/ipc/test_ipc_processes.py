"""The IPC layer between real OS processes: chat, the hub killed mid-traffic, parked messages."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from switchboard.layers.ipc import IPCChannelLayer
from tests.layers.conftest import ROOT, start_peer_process, stop_process

CHAT = Path(__file__).with_name("chat_process.py")
WAIT = 60


@pytest.fixture
def runtime(tmp_path) -> str:
    return str(tmp_path / "rt")


@pytest.fixture
def processes():
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        stop_process(proc)


def start_chat(processes, runtime, name, members, messages, interval) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, str(CHAT), runtime, name, str(members), str(messages), str(interval)],
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        cwd=str(ROOT),
    )
    processes.append(proc)
    return proc


def hub_pid(runtime: str) -> int | None:
    try:
        text = Path(runtime, "hub.lock").read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text else None


async def wait_for(predicate, timeout: float = WAIT, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def test_three_process_chat_every_member_receives_every_message(runtime, processes):
    names, members, messages = ["p1", "p2", "p3"], 4, 50
    for name in names:
        start_chat(processes, runtime, name, members, messages, 0.002)
    layer = IPCChannelLayer(path=runtime)
    try:
        ready = [await asyncio.wait_for(layer.receive("chat.ready"), WAIT) for _ in names]
        assert {r["name"] for r in ready} == set(names)
        for name in names:
            await layer.send(f"chat.go.{name}", {"type": "go"})
        for _ in names:
            await asyncio.wait_for(layer.receive("chat.sent"), WAIT)
        for name in names:
            await layer.send(f"chat.stop.{name}", {"type": "stop"})
        results = [await asyncio.wait_for(layer.receive("chat.results"), WAIT) for _ in names]
    finally:
        await layer.close()
    expected = sorted([name, seq] for name in names for seq in range(messages))
    assert {r["name"] for r in results} == set(names)
    for result in results:
        assert len(result["received"]) == members
        for got in result["received"].values():
            assert sorted(got) == expected  # every message, each once
            for name in names:  # and each sender's in the order sent
                seqs = [seq for sender, seq in got if sender == name]
                assert seqs == sorted(seqs)
        assert result["drops"]["full"] == 0


async def test_hub_killed_mid_traffic_loses_nothing_between_live_processes(runtime, processes):
    names, members, messages, interval = ["p1", "p2", "p3"], 3, 300, 0.01
    procs = {}
    for name in names:
        procs[name] = start_chat(processes, runtime, name, members, messages, interval)
    # Make sure a chat process, not this one, is the hub.
    pids = {proc.pid: name for name, proc in procs.items()}
    first_hub = await wait_for(lambda: hub_pid(runtime) in pids and hub_pid(runtime), what="hub")
    layer = IPCChannelLayer(path=runtime, capacity=10_000)
    try:
        for _ in names:
            await asyncio.wait_for(layer.receive("chat.ready"), WAIT)
        for name in names:
            await layer.send(f"chat.go.{name}", {"type": "go"})
        await asyncio.sleep(1.0)  # traffic flowing
        killed = pids[first_hub]
        os.kill(first_hub, signal.SIGKILL)
        procs[killed].wait(10)
        survivors = [name for name in names if name != killed]
        # Another process takes the hub over.
        new_hub = await wait_for(
            lambda: hub_pid(runtime) not in (None, first_hub) and hub_pid(runtime), what="new hub"
        )
        assert new_hub in {procs[name].pid for name in survivors} | {os.getpid()}
        # Memberships are restored: a member joining now, here, gets the survivors' messages,
        # and the survivors' members get its message.
        mine = await layer.new_channel()
        await layer.group_add("chat", mine)
        await layer.group_send("chat", {"type": "chat.message", "sender": "test", "seq": 0})
        seen = set()
        while not {"test", *survivors} <= seen:
            seen.add((await asyncio.wait_for(layer.receive(mine), WAIT))["sender"])
        for _ in survivors:
            await asyncio.wait_for(layer.receive("chat.sent"), WAIT)
        for name in survivors:
            await layer.send(f"chat.stop.{name}", {"type": "stop"})
        results = [await asyncio.wait_for(layer.receive("chat.results"), WAIT) for _ in survivors]
    finally:
        await layer.close()
    assert {r["name"] for r in results} == set(survivors)
    for result in results:
        assert len(result["received"]) == members
        for got in result["received"].values():
            pairs = {tuple(pair) for pair in got}
            # Every message of every live process, before, during and after the failover...
            for name in survivors:
                assert {seq for sender, seq in pairs if sender == name} == set(range(messages))
            # ...and of the member that joined after it.
            assert ("test", 0) in pairs


async def test_messages_parked_in_a_hub_that_dies_are_counted_as_lost(runtime, processes):
    holder = start_peer_process("ipc", runtime, "idle.control")
    processes.append(holder)
    await wait_for(lambda: hub_pid(runtime) == holder.pid, what="the peer to hold the hub")
    layer = IPCChannelLayer(path=runtime)
    try:
        # Nobody receives this worker channel yet: the hub holds the messages.
        await layer.send("nobody.yet", {"type": "job", "n": 1})
        await layer.send("nobody.yet", {"type": "job", "n": 2})
        assert layer.drops.totals.get("lost", 0) == 0
        os.kill(holder.pid, signal.SIGKILL)
        await wait_for(lambda: layer.drops.totals.get("lost", 0) == 2, what="lost count")
        # This process is now the hub; the layer works on.
        await wait_for(lambda: hub_pid(runtime) == os.getpid(), what="takeover")
        await layer.send("nobody.yet", {"type": "job", "n": 3})
        assert (await asyncio.wait_for(layer.receive("nobody.yet"), WAIT))["n"] == 3
    finally:
        await layer.close()


async def test_parked_messages_reach_the_first_receiver_in_another_process(runtime, processes):
    layer = IPCChannelLayer(path=runtime)
    try:
        await layer.send("later.jobs", {"type": "job", "n": 1})  # this process is the hub
        peer = start_peer_process("ipc", runtime, "later.control")
        processes.append(peer)
        from tests.layers.conftest import RemoteLayer

        remote = RemoteLayer(layer, "later.control")
        assert await remote.receive("later.jobs") == {"type": "job", "n": 1}
        assert layer.drops.totals.get("lost", 0) == 0
        await wait_for(lambda: not layer._node().inbox.parked, what="settled")
    finally:
        await layer.close()


async def test_a_killed_process_socket_file_is_removed_by_the_hub(runtime, processes):
    layer = IPCChannelLayer(path=runtime)
    try:
        await layer.new_channel()  # this process holds the hub
        peer = start_peer_process("ipc", runtime, "doomed.control")
        processes.append(peer)

        def sockets() -> int:
            return len([n for n in os.listdir(runtime) if n.startswith("n-")])

        from tests.layers.conftest import RemoteLayer

        assert await RemoteLayer(layer, "doomed.control").pid() == peer.pid  # registered
        assert sockets() == 2
        os.kill(peer.pid, signal.SIGKILL)
        await wait_for(lambda: sockets() == 1, what="its socket file removed")
    finally:
        await layer.close()


SYNC_SENDER = """
import sys
from asgiref.sync import async_to_sync
from switchboard.layers.ipc import IPCChannelLayer

layer = IPCChannelLayer(path=sys.argv[1])
# Each async_to_sync call runs on an event loop of its own, ended right after: what it sent
# must still arrive.
for n in range(3):
    async_to_sync(layer.group_send)("room", {"type": "chat", "n": n})
async_to_sync(layer.send)("later.jobs", {"type": "job"})
"""


async def test_sync_code_in_a_short_lived_process_sends_to_groups_and_workers(runtime):
    layer = IPCChannelLayer(path=runtime)
    try:
        channel = await layer.new_channel()
        await layer.group_add("room", channel)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", SYNC_SENDER, runtime, env=dict(os.environ, PYTHONPATH=str(ROOT))
        )
        assert await asyncio.wait_for(proc.wait(), WAIT) == 0
        got = [(await asyncio.wait_for(layer.receive(channel), WAIT))["n"] for _ in range(3)]
        assert got == [0, 1, 2]
        # Nobody received "later.jobs" while the sender lived: the hub (here) kept it.
        assert (await asyncio.wait_for(layer.receive("later.jobs"), WAIT))["type"] == "job"
    finally:
        await layer.close()
