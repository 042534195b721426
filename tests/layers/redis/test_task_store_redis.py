"""The Redis task store: the TaskStore contract, plus what only Redis has (several layer
instances as several workers, restarts with and without persistence, wake lists, Cluster)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import pytest

from switchboard.layers.redis import RedisChannelLayer
from switchboard.layers.redis.task_scripts import WAKE_TOKENS
from switchboard.layers.redis.tasks import RedisTaskStore
from switchboard.layers.stores.tasks import (
    FAILED,
    LOST_ERROR,
    READY,
    RUNNING,
    SUCCESSFUL,
    TaskStore,
)
from tests.layers.tasks_contract import LEASE, TaskStoreContract, claim_soon, new_queue, new_record
from tests.support.redis_servers import RedisServer


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[TaskStore]:
    layer = RedisChannelLayer(hosts=[redis_server.url])
    try:
        yield layer.task_store()
    finally:
        await layer.close()


class TestRedisTaskStoreContract(TaskStoreContract):
    pass


@pytest.fixture
async def two_layers(redis_server: RedisServer) -> AsyncIterator[list[RedisChannelLayer]]:
    layers = [RedisChannelLayer(hosts=[redis_server.url]) for _ in range(2)]
    try:
        yield layers
    finally:
        for layer in layers:
            await layer.close()


@pytest.fixture
def aof_server() -> Iterator[RedisServer]:
    server = RedisServer(name="tasks-aof", aof=True)
    try:
        yield server
    finally:
        server.cleanup()


def _stores(layers: list[RedisChannelLayer]) -> list[RedisTaskStore]:
    stores = [layer.task_store() for layer in layers]
    assert all(isinstance(s, RedisTaskStore) for s in stores)
    return stores  # type: ignore[return-value]


def test_the_layer_offers_a_task_store(redis_server: RedisServer) -> None:
    layer = RedisChannelLayer(hosts=[redis_server.url])
    assert "tasks" in layer.extensions
    assert layer.task_store() is layer.task_store()
    assert isinstance(layer.task_store(), TaskStore)


async def test_two_workers_share_the_queue_in_claim_order(two_layers) -> None:
    producer, consumer = _stores(two_layers)
    q = new_queue()
    now = time.time()
    records = [new_record(q, priority=i % 3, enqueued_at=now + i * 0.001) for i in range(30)]
    for record in records:
        await producer.enqueue(record)
    expected = sorted(records, key=lambda r: (-r.priority, r.enqueued_at))
    got = []
    for turn in range(6):  # the two alternate: together they follow the one claim order
        worker = (producer, consumer)[turn % 2]
        got += await worker.claim([q], f"w{turn % 2}", 5, LEASE)
    assert [r.id for r in got] == [r.id for r in expected]
    assert await producer.claim([q], "w0", 5, LEASE) == []
    # Each worker finishes its own tasks only.
    mine = next(r for r in got if r.worker_ids == ["w1"])
    done = replace(mine, status=SUCCESSFUL, finished_at=time.time())
    assert await producer.finish(done, "w0", 60) is False
    assert await producer.finish(done, "w1", 60) is True  # any instance, the right worker
    stored = await consumer.get(mine.id)
    assert stored is not None and stored.status == SUCCESSFUL


async def test_concurrent_claims_never_hand_a_task_out_twice(two_layers) -> None:
    a, b = _stores(two_layers)
    q = new_queue()
    for _ in range(200):
        await a.enqueue(new_record(q))

    async def drain(store: RedisTaskStore, worker: str) -> list[str]:
        taken: list[str] = []
        while got := await store.claim([q], worker, 7, LEASE):
            taken += [r.id for r in got]
        return taken

    results = await asyncio.gather(*(drain(s, f"w{i}") for i, s in enumerate((a, b, a, b))))
    taken = [task_id for result in results for task_id in result]
    assert len(taken) == len(set(taken)) == 200
    assert (await a.counts([q]))[q]["running"] == 200


async def test_a_dead_workers_task_reaches_an_idle_worker_without_polling(two_layers) -> None:
    dead, alive = _stores(two_layers)
    q = new_queue()
    record = new_record(q)
    await dead.enqueue(record)
    [held] = await dead.claim([q], "dead", 1, 0.3)
    assert await alive.claim([q], "alive", 1, LEASE) == []  # also tells it when the lease ends
    started = time.monotonic()
    await alive.wait([q], 10)  # returns when the lease runs out, not after 10 s
    [again] = await claim_soon(alive, [q], "alive", within=3)
    assert time.monotonic() - started < 1.5
    assert again.id == held.id and again.worker_ids == ["dead", "alive"]
    assert again.errors[-1]["exception_class_path"] == LOST_ERROR
    assert '"dead"' not in again.errors[-1]["traceback"] and "dead" in again.errors[-1]["traceback"]


async def test_a_scheduled_task_wakes_a_long_wait_when_due(two_layers) -> None:
    producer, worker = _stores(two_layers)
    q = new_queue()
    assert await worker.claim([q], "w", 1, LEASE) == []
    waiting = asyncio.ensure_future(worker.wait([q], 10))
    await asyncio.sleep(0.1)
    due = time.time() + 0.4
    await producer.enqueue(new_record(q, run_after=due))
    # The enqueue wakes the waiter; its claim learns the due time; the next wait ends then.
    await asyncio.wait_for(waiting, 3)
    [claimed] = await claim_soon(worker, [q], "w", within=3)  # waits of 0.05 s...
    assert time.time() < due + 1.0
    assert await worker.claim([q], "w", 1, LEASE) == []
    # ...and with long waits: nothing is due, the next wait lasts its whole timeout.
    later = time.time() + 0.3
    await producer.enqueue(new_record(q, run_after=later))
    await worker.wait([q], 10)  # the enqueue's wake-up
    assert await worker.claim([q], "w", 1, LEASE) == []
    await worker.wait([q], 10)
    assert later - 0.05 <= time.time() < later + 1.0
    assert len(await worker.claim([q], "w", 1, LEASE)) == 1
    assert claimed.run_after == pytest.approx(due)


async def test_wait_wakes_on_an_enqueue_from_another_instance(two_layers) -> None:
    producer, worker = _stores(two_layers)
    q = new_queue()
    waiters = [asyncio.ensure_future(worker.wait([q], 10)) for _ in range(2)]
    await asyncio.sleep(0.2)
    assert not any(w.done() for w in waiters)
    started = time.monotonic()
    await producer.enqueue(new_record(q))
    done, pending = await asyncio.wait(waiters, timeout=3, return_when=asyncio.FIRST_COMPLETED)
    assert done and time.monotonic() - started < 0.5
    # One task, one token: the other waiter keeps waiting until the task is left behind.
    await producer.enqueue(new_record(q))
    await asyncio.wait_for(asyncio.gather(*waiters), 3)


async def test_wake_lists_stay_bounded_and_vanish_when_drained(store: RedisTaskStore) -> None:
    q = new_queue()
    for _ in range(50):
        await store.enqueue(new_record(q))
    shard = store._shard()
    wake = f"{store.base}:w:{q}"
    assert 1 <= await shard.command("LLEN", wake) <= WAKE_TOKENS
    await store.claim([q], "w", 10, LEASE)
    assert 1 <= await shard.command("LLEN", wake) <= WAKE_TOKENS  # tasks left: still woken
    while await store.claim([q], "w", 100, LEASE):
        pass
    assert await shard.command("EXISTS", wake) == 0
    started = time.monotonic()
    await store.wait([q], 0.3)  # nothing claimable: no stale token ends it early
    assert time.monotonic() - started >= 0.25


async def test_an_enqueue_sent_twice_runs_once(store: RedisTaskStore) -> None:
    # What a pipeline resent after a lost reply does: the same record enqueued again.
    q = new_queue()
    record = new_record(q)
    await store.enqueue(record)
    await store.enqueue(record)
    assert [r.id for r in await store.claim([q], "w", 5, LEASE)] == [record.id]
    assert await store.claim([q], "w", 5, LEASE) == []
    assert (await store.counts([q]))[q] == {"queued": 0, "scheduled": 0, "running": 1, "failed": 0}


async def test_user_data_round_trips_exactly(store: RedisTaskStore) -> None:
    q = new_queue()
    args = [2**70, -(2**63), 0.1 + 0.2, 1e308, "\u2603 {tasks} |x|", [], {}]
    record = new_record(q, args=args, kwargs={"big": 12345678901234567890})
    await store.enqueue(record)
    [claimed] = await store.claim([q], 'wörker "quoted" \\ id', 1, LEASE)
    assert claimed.args == args and claimed.kwargs == {"big": 12345678901234567890}
    assert claimed.worker_ids == ['wörker "quoted" \\ id']
    failed = replace(claimed, status=FAILED, finished_at=time.time(), return_value=2**80)
    assert await store.finish(failed, 'wörker "quoted" \\ id', 60)
    assert await store.get(record.id) == failed


async def test_restart_with_aof_keeps_every_task(aof_server: RedisServer) -> None:
    layer = RedisChannelLayer(hosts=[aof_server.url])
    other = RedisChannelLayer(hosts=[aof_server.url])
    store, producer = _stores([layer, other])
    try:
        q = new_queue()
        queued, running, scheduled = new_record(q), new_record(q), new_record(q)
        await store.enqueue(running)
        [held] = await store.claim([q], "w", 1, LEASE)
        await store.enqueue(queued)
        await store.enqueue(replace(scheduled, run_after=time.time() + 2.0))
        before = await store.counts([q])
        assert before[q] == {"queued": 1, "scheduled": 1, "running": 1, "failed": 0}
        waiting = asyncio.ensure_future(store.wait([new_queue()], 30))
        await asyncio.sleep(0.1)

        aof_server.restart()

        await asyncio.wait_for(waiting, 5)  # its connection broke: a spurious return, no error
        assert await store.counts([q]) == before  # the same store object, reconnected
        assert await store.get(held.id) == held
        assert await store.extend([held.id], "w", LEASE) == []
        assert await store.finish(replace(held, status=SUCCESSFUL, finished_at=1.0), "w", 60)
        [again] = await store.claim([q], "w", 5, LEASE)
        assert again.id == queued.id
        [late] = await claim_soon(store, [q], "w", within=5)
        assert late.id == scheduled.id
        # Wake-ups work again across instances.
        waiting = asyncio.ensure_future(store.wait([q], 10))
        await asyncio.sleep(0.1)
        await producer.enqueue(new_record(q))
        await asyncio.wait_for(waiting, 3)
        assert await store.persistence_warning() is None
    finally:
        await layer.close()
        await other.close()


async def test_restart_without_persistence_loses_tasks_but_keeps_working(
    fresh_redis_server: RedisServer,
) -> None:
    layer = RedisChannelLayer(hosts=[fresh_redis_server.url])
    store = layer.task_store()
    try:
        q = new_queue()
        lost = new_record(q)
        await store.enqueue(lost)
        fresh_redis_server.restart()
        assert await store.get(lost.id) is None
        kept = new_record(q)
        await store.enqueue(kept)
        assert [r.id for r in await store.claim([q], "w", 5, LEASE)] == [kept.id]
    finally:
        await layer.close()


async def test_persistence_warning(redis_server: RedisServer, aof_server: RedisServer) -> None:
    bare = RedisChannelLayer(hosts=[redis_server.url])
    aof = RedisChannelLayer(hosts=[aof_server.url])
    try:
        warning = await _stores([bare])[0].persistence_warning()
        assert warning is not None and "lost" in warning and str(redis_server.port) in warning
        assert await _stores([aof])[0].persistence_warning() is None
        with redis_server.client() as client:
            client.config_set("save", "3600 1")
        try:
            assert await _stores([bare])[0].persistence_warning() is None  # RDB snapshots
        finally:
            with redis_server.client() as client:
                client.config_set("save", "")
    finally:
        await bare.close()
        await aof.close()


async def test_persistence_warning_without_config_command() -> None:
    with RedisServer(name="noconfig", extra_args=["--rename-command", "CONFIG", ""]) as server:
        layer = RedisChannelLayer(hosts=[server.url])
        try:
            assert await _stores([layer])[0].persistence_warning() is None
        finally:
            await layer.close()


async def test_layer_flush_forgets_tasks_too(store: RedisTaskStore) -> None:
    q = new_queue()
    record = new_record(q)
    await store.enqueue(record)
    await store.layer.flush()  # type: ignore[attr-defined]
    assert await store.get(record.id) is None and await store.counts() == {}


async def test_tasks_live_on_one_shard(redis_shards: list[RedisServer]) -> None:
    layers = [RedisChannelLayer(hosts=[s.url for s in redis_shards]) for _ in range(2)]
    a, b = _stores(layers)
    try:
        queues = [new_queue() for _ in range(5)]
        for q in queues:
            await a.enqueue(new_record(q))
        got = await b.claim(queues, "w", 10, LEASE)
        assert len(got) == 5
        holding = []
        for server in redis_shards:
            with server.client() as client:
                holding.append(len(client.keys(f"{a.base}:*")))
        assert sorted(holding)[:2] == [0, 0] and max(holding) > 0
    finally:
        for layer in layers:
            await layer.close()


async def test_cluster_enqueue_claim_finish_and_wait(redis_cluster) -> None:
    layers = [RedisChannelLayer(hosts=redis_cluster.urls, cluster=True) for _ in range(2)]
    a, b = _stores(layers)
    try:
        q = new_queue()
        waiting = asyncio.ensure_future(b.wait([q], 10))
        await asyncio.sleep(0.2)
        record = new_record(q, priority=3)
        await a.enqueue(record)
        await a.enqueue(new_record(q, run_after=time.time() + 0.3))
        await asyncio.wait_for(waiting, 3)
        [claimed] = await b.claim([q], "w", 5, LEASE)
        assert claimed.id == record.id and claimed.status == RUNNING
        assert await a.extend([claimed.id], "w", LEASE) == []
        [late] = await claim_soon(b, [q], "w", within=3)
        retried = replace(late, errors=[{"exception_class_path": "E", "traceback": ""}])
        assert await b.retry(retried, "w", 0)
        assert await b.release((await b.claim([q], "w", 1, LEASE))[0], "w")
        released = await a.get(late.id)
        assert released is not None and released.status == READY
        done = replace(claimed, status=FAILED, finished_at=time.time(), errors=[])
        assert await a.finish(done, "w", 60)
        assert [r.id for r in await a.list("failed", q)] == [record.id]
        assert await a.requeue(record.id)
        assert (await a.counts([q]))[q]["queued"] == 2
        assert await a.persistence_warning() is not None  # the harness's nodes don't persist
        shard = a._shard()  # the node owning the tasks' slot turns AOF on: no warning
        node = shard.client.get_node_from_key(a.base)  # type: ignore[attr-defined]
        await shard.client.config_set("appendonly", "yes", target_nodes=node)
        try:
            assert await a.persistence_warning() is None
        finally:
            await shard.client.config_set("appendonly", "no", target_nodes=node)
        await a.flush()
        assert await a.counts() == {}
    finally:
        for layer in layers:
            await layer.close()
