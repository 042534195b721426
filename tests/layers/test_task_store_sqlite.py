"""The SQLite task store: the TaskStore contract for the in-memory layer's store (a private
in-memory database) and the IPC layer's (a file in its runtime directory), then what only they
promise: threads and event loops sharing one store, the file shared by real OS processes that
claim at once, wake each other and survive each other's SIGKILL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import stat
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from switchboard.layers.inmemory import InMemoryChannelLayer
from switchboard.layers.ipc import IPCChannelLayer
from switchboard.layers.stores import sqlite_task_sql
from switchboard.layers.stores.sqlite_tasks import SqliteTaskStore
from switchboard.layers.stores.task_wakeups import wake_group
from switchboard.layers.stores.tasks import LOST_ERROR, RUNNING, TaskStore
from tests.layers.tasks_contract import (
    TaskStoreContract,
    claim_soon,
    new_queue,
    new_record,
)

ROOT = Path(__file__).resolve().parents[2]


class TestInMemoryLayerTaskStore(TaskStoreContract):
    @pytest.fixture
    async def store(self) -> AsyncIterator[TaskStore]:
        layer = InMemoryChannelLayer()
        store = layer.task_store()
        yield store
        await store.close()
        await layer.close()


class TestIPCLayerTaskStore(TaskStoreContract):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[TaskStore]:
        layer = IPCChannelLayer(path=str(tmp_path / "rt"))
        store = layer.task_store()
        yield store
        await store.close()
        await layer.close()


# -- one process ------------------------------------------------------------------------------


async def test_layers_offer_one_store_each_and_flush_keeps_tasks(tmp_path: Path) -> None:
    for layer in (InMemoryChannelLayer(), IPCChannelLayer(path=str(tmp_path / "rt"))):
        assert "tasks" in layer.extensions
        store = layer.task_store()
        assert isinstance(store, SqliteTaskStore) and layer.task_store() is store
        record = new_record(new_queue())
        await store.enqueue(record)
        await layer.flush()
        assert layer.task_store() is store
        assert await store.get(record.id) == record
        await store.close()
        await layer.close()


async def test_in_memory_stores_are_private_to_their_layer() -> None:
    one, two = InMemoryChannelLayer(), InMemoryChannelLayer()
    record = new_record(new_queue())
    await one.task_store().enqueue(record)
    assert await two.task_store().get(record.id) is None


async def test_in_memory_store_serves_loops_of_other_threads() -> None:
    store = InMemoryChannelLayer().task_store()
    q = new_queue()
    record = new_record(q)
    waiting = asyncio.ensure_future(store.wait([q], 10))
    await asyncio.sleep(0.2)  # wait must not return while nothing is claimable
    assert not waiting.done()
    started = time.monotonic()
    # Enqueued on another thread's event loop, as a server loop would while a worker waits.
    await asyncio.to_thread(asyncio.run, store.enqueue(record))
    await asyncio.wait_for(waiting, 3)
    assert time.monotonic() - started < 1
    claimed = await asyncio.to_thread(asyncio.run, store.claim([q], "thread-worker", 1, 30))
    assert [r.id for r in claimed] == [record.id]
    assert (await store.get(record.id)).worker_ids == ["thread-worker"]


async def test_ipc_tasks_live_in_a_private_file_that_outlives_the_layer(tmp_path: Path) -> None:
    path = tmp_path / "rt"
    first = IPCChannelLayer(path=str(path))
    record = new_record(new_queue())
    await first.task_store().enqueue(record)
    await first.task_store().close()
    await first.close()
    database = path / "tasks.sqlite3"
    assert stat.S_IMODE(os.lstat(database).st_mode) == 0o600
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o700
    with contextlib.closing(sqlite3.connect(database)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    # As a process started later would: a new layer on the same directory.
    second = IPCChannelLayer(path=str(path))
    try:
        assert await second.task_store().get(record.id) == record
    finally:
        await second.task_store().close()
        await second.close()


async def test_ipc_wake_ups_cross_layers_and_a_full_wake_channel_never_raises(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "rt")
    # Two layers: two tokens with their own sockets, as two processes would have.
    waiter, sender = IPCChannelLayer(path=path, capacity=1), IPCChannelLayer(path=path)
    q = new_queue()
    try:
        # A member of the queue's wake group that nobody reads: full after one wake-up.
        assert wake_group(q).startswith("sbtasks.wake.")
        await waiter.group_add(wake_group(q), await waiter.new_channel())
        for store in (sender.task_store(), waiter.task_store()):
            for _ in range(3):
                await store.enqueue(new_record(q))
        assert waiter.drops.totals["full"] >= 2  # the hints were dropped, nothing raised
        assert (await waiter.task_store().counts([q]))[q]["queued"] == 6
        await waiter.task_store().claim([q], "w", 6, 30)
        waiting = asyncio.ensure_future(waiter.task_store().wait([q], 10))
        await asyncio.sleep(0.2)  # wait must not return while nothing is claimable
        assert not waiting.done()
        started = time.monotonic()
        await sender.task_store().enqueue(new_record(q))
        await asyncio.wait_for(waiting, 3)
        assert time.monotonic() - started < 1
    finally:
        for layer in (waiter, sender):
            await layer.task_store().close()
            await layer.close()


def test_connections_racing_to_create_the_database_all_succeed(tmp_path: Path) -> None:
    # Switching a new file to WAL needs it to itself and SQLite does not wait for that: the
    # losers of the race must retry, not fail. Threads meet at a barrier to make the race.
    failures: list[BaseException] = []

    def open_it(database: str, barrier: threading.Barrier) -> None:
        barrier.wait()
        try:
            sqlite_task_sql.connect(database, 10).close()
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    for round_ in range(20):
        database, barrier = str(tmp_path / f"race{round_}.sqlite3"), threading.Barrier(6)
        threads = [threading.Thread(target=open_it, args=(database, barrier)) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []


async def test_a_cancelled_claim_leaves_nothing_stranded(tmp_path: Path) -> None:
    layer = IPCChannelLayer(path=str(tmp_path / "rt"))
    store = layer.task_store()
    q = new_queue()
    record = new_record(q)
    await store.enqueue(record)
    # Another connection holds the write lock: the claim is under way in the store's thread,
    # waiting for it, when its caller is cancelled.
    blocker = sqlite3.connect(tmp_path / "rt" / "tasks.sqlite3", isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        claiming = asyncio.ensure_future(store.claim([q], "cancelled", 1, 30))
        await asyncio.sleep(0.2)  # the store's thread reaches the lock and waits there
        claiming.cancel()
        with pytest.raises(asyncio.CancelledError):
            await claiming
        blocker.execute("COMMIT")
        [again] = await claim_soon(store, [q], "next", within=2)
        assert again.id == record.id and again.worker_ids == ["next"] and again.errors == []
    finally:
        blocker.close()
        await store.close()
        await layer.close()


# -- real OS processes -------------------------------------------------------------------------

CHILD = r"""
import asyncio, json, sys, time, uuid
from switchboard.layers.ipc import IPCChannelLayer
from switchboard.layers.stores.tasks import TaskRecord

async def main(path, role, queue, worker, lease):
    layer = IPCChannelLayer(path=path)
    store = layer.task_store()
    loop = asyncio.get_running_loop()
    if role == "hold":
        [record] = await store.claim([queue], worker, 1, float(lease))
        print(record.id, flush=True)
        await loop.create_future()  # until killed
    if role != "open":
        await store.counts([queue])  # the database is open: ready
    print("ready", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    if role == "open":  # all at once, on a directory nobody used yet
        print(json.dumps(await store.counts([queue])), flush=True)
    elif role == "claim":
        got = []
        while batch := await store.claim([queue], worker, 3, float(lease)):
            got += [r.id for r in batch]
        print(json.dumps(got), flush=True)
    else:
        record = TaskRecord(id=uuid.uuid4().hex, path="t.x", queue=queue, enqueued_at=time.time())
        await store.enqueue(record)
        print(record.id, flush=True)
    await store.close()
    await layer.close()

asyncio.run(main(*sys.argv[1:]))
"""


async def start_child(*args: str) -> asyncio.subprocess.Process:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=env,
        cwd=str(ROOT),
    )


async def line_of(proc: asyncio.subprocess.Process, timeout: float = 30) -> str:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout)
    assert line, "the child process ended early"
    return line.decode().strip()


def go(proc: asyncio.subprocess.Process) -> None:
    assert proc.stdin is not None
    proc.stdin.write(b"go\n")


async def reap(*procs: asyncio.subprocess.Process) -> None:
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


@pytest.fixture
async def ipc_store(tmp_path: Path) -> AsyncIterator[tuple[str, TaskStore]]:
    path = str(tmp_path / "rt")
    layer = IPCChannelLayer(path=path)
    store = layer.task_store()
    yield path, store
    await store.close()
    await layer.close()


async def test_processes_creating_the_database_at_once_all_succeed(tmp_path: Path) -> None:
    path, q = str(tmp_path / "rt"), new_queue()
    children = [await start_child(path, "open", q, "unused", "30") for _ in range(4)]
    try:
        for child in children:
            assert await line_of(child) == "ready"
        assert not (tmp_path / "rt" / "tasks.sqlite3").exists()
        for child in children:
            go(child)
        for child in children:
            assert json.loads(await line_of(child)) == {
                q: {"queued": 0, "scheduled": 0, "running": 0, "failed": 0}
            }
    finally:
        await reap(*children)


async def test_processes_claiming_at_once_never_share_a_task(ipc_store) -> None:
    path, store = ipc_store
    q = new_queue()
    records = [new_record(q) for _ in range(240)]
    for record in records:
        await store.enqueue(record)
    children = [await start_child(path, "claim", q, f"proc{n}", "30") for n in range(3)]
    try:
        for child in children:
            assert await line_of(child) == "ready"
        for child in children:
            go(child)
        mine: list[str] = []
        while batch := await store.claim([q], "parent", 3, 30):
            mine += [r.id for r in batch]
        theirs = [json.loads(await line_of(child)) for child in children]
    finally:
        await reap(*children)
    claimed = mine + [task_id for got in theirs for task_id in got]
    assert len(claimed) == len(set(claimed)), "a task was claimed twice"
    assert sorted(claimed) == sorted(r.id for r in records)
    assert sum(1 for got in (mine, *theirs) if got) >= 2  # they did race
    for record in records[:10]:
        stored = await store.get(record.id)
        assert stored.status == RUNNING and len(stored.worker_ids) == 1


async def test_an_enqueue_in_another_process_wakes_a_waiter_promptly(ipc_store) -> None:
    path, store = ipc_store
    q = new_queue()
    child = await start_child(path, "enqueue", q, "unused", "30")
    try:
        assert await line_of(child) == "ready"
        waiting = asyncio.ensure_future(store.wait([q], 10))
        await asyncio.sleep(0.3)  # wait must not return while nothing is claimable
        assert not waiting.done()
        started = time.monotonic()
        go(child)
        await asyncio.wait_for(waiting, 5)
        elapsed = time.monotonic() - started
        task_id = await line_of(child)
    finally:
        await reap(child)
    assert elapsed < 2  # the process's start-up is already done: this is the wake-up
    assert [r.id for r in await store.claim([q], "parent", 5, 30)] == [task_id]


async def test_a_task_held_by_a_killed_process_is_claimed_after_its_lease(ipc_store) -> None:
    path, store = ipc_store
    q = new_queue()
    record = new_record(q)
    await store.enqueue(record)
    child = await start_child(path, "hold", q, "doomed", "1.5")
    try:
        assert await line_of(child) == record.id
        child.send_signal(signal.SIGKILL)
        await child.wait()
    finally:
        await reap(child)
    killed_at = time.time()
    assert await store.claim([q], "parent", 1, 30) == []  # its lease still runs
    [again] = await claim_soon(store, [q], "parent", within=5)
    assert time.time() - killed_at < 4  # at the lease's end, not at some later sweep
    assert again.id == record.id and again.worker_ids == ["doomed", "parent"]
    [lost] = again.errors
    assert lost["exception_class_path"] == LOST_ERROR and "doomed" in lost["traceback"]
    assert await store.get(record.id) == again
