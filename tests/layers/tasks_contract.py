"""The TaskStore contract (switchboard/layers/stores/tasks.py), for every backend.

A backend's test module subclasses :class:`TaskStoreContract` and provides an async ``store``
fixture yielding a ready :class:`~switchboard.layers.stores.tasks.TaskStore`; the class is not
collected on its own (its name does not start with ``Test``). Every test uses queue names of
its own, so a store may be shared between tests; only ``test_flush_forgets_everything`` empties
it. Time-based rules (scheduling, leases, expiry) use offsets of a few tenths of a second.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

from switchboard.layers.stores.tasks import (
    FAILED,
    LOST_ERROR,
    READY,
    RUNNING,
    SUCCESSFUL,
    TaskRecord,
    TaskStore,
)

__all__ = ["TaskStoreContract", "claim_soon", "new_queue", "new_record"]

LEASE = 30.0  # long enough never to run out in a test that does not mean it to


def new_queue(stem: str = "q") -> str:
    return f"{stem}-{uuid.uuid4().hex[:10]}"


def new_record(queue: str, **fields: Any) -> TaskRecord:
    fields.setdefault("enqueued_at", time.time())
    return TaskRecord(id=uuid.uuid4().hex, path="tests.tasks.noop", queue=queue, **fields)


def error(text: str = "boom") -> dict[str, str]:
    return {"exception_class_path": "builtins.ValueError", "traceback": text}


async def claim_soon(
    store: TaskStore,
    queues: Sequence[str],
    worker: str,
    within: float = 3.0,
    count: int = 1,
    lease: float = LEASE,
) -> list[TaskRecord]:
    """Claim until something comes (or ``within`` seconds pass), waiting in between."""
    deadline = time.monotonic() + within
    while True:
        got = await store.claim(queues, worker, count, lease)
        if got or time.monotonic() > deadline:
            return got
        await store.wait(queues, 0.05)


async def until(check: Callable[[], Awaitable[bool]], within: float = 3.0) -> bool:
    """Whether ``check`` comes true within ``within`` seconds (for time-based expiry)."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def ids(records: Sequence[TaskRecord]) -> list[str]:
    return [r.id for r in records]


class TaskStoreContract:
    """The rules of the TaskStore protocol; subclasses provide the ``store`` fixture."""

    # -- enqueue, get, claim --------------------------------------------------------------

    async def test_enqueue_then_get_round_trips_every_field(self, store: TaskStore) -> None:
        q = new_queue()
        record = new_record(
            q,
            priority=7,
            args=[1, "two", [3.5, None], {"four": True}],
            kwargs={"x": {"nested": [1, 2]}, "y": "é"},
            backend="other",
            takes_context=True,
            worker_ids=[],
            retry_floor=0,
            progress=None,
        )
        await store.enqueue(record)
        assert await store.get(record.id) == record
        later = new_record(q, run_after=time.time() + 60)
        await store.enqueue(later)
        assert await store.get(later.id) == later
        assert await store.get(uuid.uuid4().hex) is None

    async def test_claim_leases_the_task_and_records_the_attempt(self, store: TaskStore) -> None:
        q = new_queue()
        record = new_record(q, args=[1], kwargs={"a": 2})
        await store.enqueue(record)
        before = time.time()
        [claimed] = await store.claim([q], "w1", 5, LEASE)
        after = time.time()
        assert claimed.status == RUNNING and claimed.worker_ids == ["w1"]
        assert claimed.last_attempted_at is not None and claimed.started_at is not None
        assert before - 0.01 <= claimed.last_attempted_at <= after + 0.01
        assert claimed.started_at == claimed.last_attempted_at
        assert replace(claimed, status=READY, worker_ids=[]) == replace(
            record, started_at=claimed.started_at, last_attempted_at=claimed.last_attempted_at
        )
        assert await store.get(record.id) == claimed
        assert await store.claim([q], "w2", 5, LEASE) == []

    async def test_claim_takes_highest_priority_then_oldest(self, store: TaskStore) -> None:
        q = new_queue()
        now = time.time()
        order = [("low1", -5), ("mid1", 0), ("high1", 10), ("mid2", 0), ("high2", 10), ("low2", -5)]
        made = {}
        for name, priority in order:
            made[name] = new_record(q, priority=priority, enqueued_at=now)
            await store.enqueue(made[name])
        got = []
        for _ in order:
            [claimed] = await store.claim([q], "w", 1, LEASE)
            got.append(claimed.id)
        expected = ["high1", "high2", "mid1", "mid2", "low1", "low2"]
        assert got == [made[name].id for name in expected]

    async def test_older_enqueued_at_goes_first_whatever_the_call_order(
        self, store: TaskStore
    ) -> None:
        q = new_queue()
        newer = new_record(q, enqueued_at=time.time())
        older = new_record(q, enqueued_at=time.time() - 10)
        await store.enqueue(newer)
        await store.enqueue(older)
        assert ids(await store.claim([q], "w", 2, LEASE)) == [older.id, newer.id]

    async def test_claim_takes_queues_in_the_order_given_up_to_count(
        self, store: TaskStore
    ) -> None:
        first, second, other = new_queue("first"), new_queue("second"), new_queue("other")
        a = [new_record(first) for _ in range(2)]
        b = [new_record(second, priority=50) for _ in range(3)]
        c = new_record(other, priority=100)
        for record in [*b, *a, c]:
            await store.enqueue(record)
        got = await store.claim([first, second], "w", 3, LEASE)
        assert ids(got) == [a[0].id, a[1].id, b[0].id]
        assert ids(await store.claim([second, first], "w", 10, LEASE)) == [
            b[1].id,
            b[2].id,
        ]
        assert await store.claim([first, second], "w", 10, LEASE) == []
        assert (await store.get(c.id)).status == READY  # another queue: untouched

    # -- scheduled ----------------------------------------------------------------------

    async def test_scheduled_task_waits_until_due_then_is_claimable(self, store: TaskStore) -> None:
        q = new_queue()
        due = time.time() + 0.4
        record = new_record(q, run_after=due)
        await store.enqueue(record)
        assert await store.claim([q], "w", 1, LEASE) == []
        assert ids(await store.list("scheduled", q)) == [record.id]
        assert await store.list("queued", q) == []
        [claimed] = await claim_soon(store, [q], "w", within=3)
        claimed_at = time.time()
        assert claimed.id == record.id
        assert due - 0.01 <= claimed.last_attempted_at
        assert claimed_at < due + 1.2  # due tasks become claimable within about a second

    # -- leases -------------------------------------------------------------------------

    async def test_extend_keeps_the_lease_past_its_first_term(self, store: TaskStore) -> None:
        q = new_queue()
        record = new_record(q)
        await store.enqueue(record)
        await store.claim([q], "w1", 1, 0.3)
        for _ in range(5):  # 0.5 s in all: well past the first 0.3 s lease
            await asyncio.sleep(0.1)
            assert await store.extend([record.id], "w1", 0.3) == []
            assert await store.claim([q], "w2", 1, LEASE) == []
        assert (await store.get(record.id)).worker_ids == ["w1"]

    async def test_extend_reports_what_the_worker_does_not_hold(self, store: TaskStore) -> None:
        q = new_queue()
        mine, theirs, queued = new_record(q), new_record(q), new_record(q)
        for record in (mine, theirs):
            await store.enqueue(record)
        await store.claim([q], "w1", 1, LEASE)
        await store.claim([q], "w2", 1, LEASE)
        await store.enqueue(queued)
        unknown = uuid.uuid4().hex
        lost = await store.extend([mine.id, theirs.id, queued.id, unknown], "w1", LEASE)
        assert sorted(lost) == sorted([theirs.id, queued.id, unknown])

    async def test_an_expired_lease_is_claimed_again_and_the_old_worker_is_refused(
        self, store: TaskStore
    ) -> None:
        q = new_queue()
        record = new_record(q)
        await store.enqueue(record)
        [old] = await store.claim([q], "worker-old", 1, 0.2)
        [again] = await claim_soon(store, [q], "worker-new", within=3)
        assert again.id == record.id and again.status == RUNNING
        assert again.worker_ids == ["worker-old", "worker-new"]
        [lost] = again.errors
        assert lost["exception_class_path"] == LOST_ERROR
        assert "worker-old" in lost["traceback"]
        finished = replace(old, status=SUCCESSFUL, finished_at=time.time(), return_value=1)
        assert await store.finish(finished, "worker-old", 60) is False
        assert await store.retry(replace(old, errors=[error()]), "worker-old", 0) is False
        assert await store.release(old, "worker-old") is False
        assert await store.extend([record.id], "worker-old", LEASE) == [record.id]
        assert await store.get(record.id) == again
        done = replace(again, status=SUCCESSFUL, finished_at=time.time(), return_value=2)
        assert await store.finish(done, "worker-new", 60) is True
        assert (await store.get(record.id)).return_value == 2

    # -- finish, retry, release, requeue -------------------------------------------------

    async def test_finish_stores_the_result_and_stops_it_running(self, store: TaskStore) -> None:
        q = new_queue()
        record = new_record(q)
        await store.enqueue(record)
        [claimed] = await store.claim([q], "w", 1, LEASE)
        done = replace(claimed, status=SUCCESSFUL, finished_at=time.time(), return_value={"a": 1})
        assert await store.finish(done, "someone-else", 60) is False
        assert (await store.get(record.id)).status == RUNNING
        assert await store.finish(done, "w", 60) is True
        assert await store.get(record.id) == done
        assert await store.list("running", q) == []
        assert await store.claim([q], "w", 1, LEASE) == []
        assert await store.finish(done, "w", 60) is False  # finished: nobody holds it

    async def test_a_finished_record_expires_after_its_ttl(self, store: TaskStore) -> None:
        q = new_queue()
        kept, brief = new_record(q), new_record(q)
        for record in (kept, brief):
            await store.enqueue(record)
        for claimed in await store.claim([q], "w", 2, LEASE):
            ttl = 0.2 if claimed.id == brief.id else 60
            failed = replace(claimed, status=FAILED, finished_at=time.time(), errors=[error()])
            assert await store.finish(failed, "w", ttl)
        assert (await store.get(brief.id)).status == FAILED

        async def gone() -> bool:
            return await store.get(brief.id) is None

        assert await until(gone, within=3)
        assert ids(await store.list("failed", q)) == [kept.id]
        assert (await store.counts([q]))[q]["failed"] == 1

    async def test_retry_to_the_future_schedules_and_to_now_queues(self, store: TaskStore) -> None:
        q = new_queue()
        record = new_record(q)
        await store.enqueue(record)
        [first] = await store.claim([q], "w1", 1, LEASE)
        failing = replace(first, errors=[error("one")])
        assert await store.retry(failing, "other", time.time()) is False
        due = time.time() + 0.4
        assert await store.retry(failing, "w1", due) is True
        stored = await store.get(record.id)
        assert stored.status == READY and stored.errors == [error("one")]
        assert ids(await store.list("scheduled", q)) == [record.id]
        assert await store.claim([q], "w2", 1, LEASE) == []
        [second] = await claim_soon(store, [q], "w2", within=3)
        assert second.last_attempted_at >= due - 0.01
        assert second.worker_ids == ["w1", "w2"]
        assert second.started_at == first.started_at  # set by the first attempt only
        failing = replace(second, errors=[error("one"), error("two")])
        assert await store.retry(failing, "w2", time.time() - 1) is True
        [third] = await store.claim([q], "w3", 1, LEASE)
        assert third.errors == [error("one"), error("two")]
        assert third.worker_ids == ["w1", "w2", "w3"]

    async def test_release_hands_the_task_back_queued(self, store: TaskStore) -> None:
        q = new_queue()
        record = new_record(q)
        await store.enqueue(record)
        [claimed] = await store.claim([q], "w1", 1, LEASE)
        assert await store.release(claimed, "w2") is False
        assert await store.release(claimed, "w1") is True
        stored = await store.get(record.id)
        assert stored.status == READY and stored.worker_ids == ["w1"]
        assert ids(await store.list("queued", q)) == [record.id]
        assert await store.extend([record.id], "w1", LEASE) == [record.id]
        [again] = await store.claim([q], "w2", 1, LEASE)
        assert again.worker_ids == ["w1", "w2"]

    async def test_settle_writes_many_in_one_call_each_as_its_method_would(
        self, store: TaskStore
    ) -> None:
        q = new_queue()
        records = [new_record(q) for _ in range(5)]
        for record in records:
            await store.enqueue(record)
        claimed = {r.id: r for r in await store.claim([q], "w", 5, LEASE)}
        ok, failed, later, back, stranger = (claimed[r.id] for r in records)
        ok = replace(ok, status=SUCCESSFUL, finished_at=time.time(), return_value=[1])
        failed = replace(failed, status=FAILED, finished_at=time.time(), errors=[error()])
        later = replace(later, errors=[error("again")])
        assert await store.extend([stranger.id], "w", 0.01) == []
        done = await store.settle(
            [
                ("finish", ok, 60),
                ("finish", failed, 60),
                ("retry", later, time.time() + 30),
                ("release", back, 0.0),
            ],
            "w",
        )
        assert done == [True, True, True, True]
        assert await store.get(ok.id) == ok
        assert (await store.get(failed.id)).status == FAILED
        assert ids(await store.list("failed", q)) == [failed.id]
        assert ids(await store.list("scheduled", q)) == [later.id]
        assert ids(await store.list("queued", q)) == [back.id]
        # One the worker no longer holds is refused alone, the rest of the batch lands.
        await asyncio.sleep(0.05)
        [taken] = await store.claim([q], "w2", 1, LEASE)  # back, or the expired stranger
        gone = stranger if taken.id == stranger.id else back
        lost = replace(taken, status=SUCCESSFUL, finished_at=time.time())
        assert await store.settle([("finish", lost, 60)], "w") == [False]
        assert await store.settle([], "w") == []
        assert gone.id in {r.id for r in await store.list("queued", q)} | {
            r.id for r in await store.list("running", q)
        }

    async def test_requeue_takes_failed_tasks_only(self, store: TaskStore) -> None:
        q = new_queue()
        failed, succeeded, running, queued = (new_record(q) for _ in range(4))
        for record in (failed, succeeded, running):
            await store.enqueue(record)
        claimed = {r.id: r for r in await store.claim([q], "w", 3, LEASE)}
        now = time.time()
        errors = [error("a"), error("b")]
        f = replace(claimed[failed.id], status=FAILED, finished_at=now, errors=errors)
        s = replace(claimed[succeeded.id], status=SUCCESSFUL, finished_at=now)
        assert await store.finish(f, "w", 60) and await store.finish(s, "w", 60)
        await store.enqueue(queued)
        for task_id in (succeeded.id, running.id, queued.id, uuid.uuid4().hex):
            assert await store.requeue(task_id) is False
        assert await store.requeue(failed.id) is True
        stored = await store.get(failed.id)
        assert stored.status == READY and stored.finished_at is None
        assert stored.retry_floor == 2 and stored.errors == errors
        assert await store.list("failed", q) == []
        assert await store.requeue(failed.id) is False  # not FAILED any more
        got = await store.claim([q], "w2", 5, LEASE)
        assert sorted(ids(got)) == sorted([failed.id, queued.id])

    # -- progress, listing, counting ------------------------------------------------------

    async def test_update_progress_sets_a_running_tasks_progress(self, store: TaskStore) -> None:
        q = new_queue()
        record = new_record(q)
        await store.enqueue(record)
        await store.claim([q], "w", 1, LEASE)
        await store.update_progress(record.id, {"fraction": 0.5, "message": "half"})
        assert (await store.get(record.id)).progress == {"fraction": 0.5, "message": "half"}
        await store.update_progress(record.id, {"fraction": None, "message": "unsure"})
        assert (await store.get(record.id)).progress == {"fraction": None, "message": "unsure"}
        await store.update_progress(uuid.uuid4().hex, {"fraction": 1.0, "message": ""})

    async def test_list_each_state_with_queue_filter_and_limit(self, store: TaskStore) -> None:
        q, other = new_queue(), new_queue("other")
        now = time.time()
        queued = [new_record(q, priority=p, enqueued_at=now) for p in (0, 5, 0)]
        late, soon = new_record(q, run_after=now + 90), new_record(q, run_after=now + 60)
        run1, run2, fail1, fail2 = (new_record(q) for _ in range(4))
        elsewhere = new_record(other)
        for record in (run1, run2, fail1, fail2):
            await store.enqueue(record)
        held = [*await store.claim([q], "w", 1, LEASE), *await store.claim([q], "w", 3, LEASE)]
        for n, claimed in enumerate(held[2:]):
            failed = replace(claimed, status=FAILED, finished_at=now + n, errors=[error()])
            assert await store.finish(failed, "w", 60)
        for record in (*queued, late, soon, elsewhere):
            await store.enqueue(record)
        assert ids(await store.list("queued", q)) == [queued[1].id, queued[0].id, queued[2].id]
        assert ids(await store.list("queued", q, limit=2)) == [queued[1].id, queued[0].id]
        assert ids(await store.list("scheduled", q)) == [soon.id, late.id]
        assert ids(await store.list("scheduled", q, limit=1)) == [soon.id]
        assert ids(await store.list("running", q)) == [run1.id, run2.id]
        assert ids(await store.list("running", q, limit=1)) == [run1.id]
        assert ids(await store.list("failed", q)) == [fail1.id, fail2.id]
        assert len(await store.list("failed", q, limit=1)) == 1
        assert ids(await store.list("queued", other)) == [elsewhere.id]
        everywhere = ids(await store.list("queued", None, limit=100_000))
        assert {elsewhere.id, queued[0].id} <= set(everywhere)
        assert await store.list("queued", new_queue("empty")) == []

    async def test_counts_per_queue(self, store: TaskStore) -> None:
        q, other, empty = new_queue(), new_queue("other"), new_queue("empty")
        for record in (new_record(q) for _ in range(4)):
            await store.enqueue(record)
        await store.enqueue(new_record(q, run_after=time.time() + 60))
        await store.enqueue(new_record(other))
        running = await store.claim([q], "w", 2, LEASE)
        failed = replace(running[0], status=FAILED, finished_at=time.time(), errors=[error()])
        assert await store.finish(failed, "w", 60)
        done = await store.claim([q], "w", 1, LEASE)
        assert await store.finish(
            replace(done[0], status=SUCCESSFUL, finished_at=time.time()), "w", 60
        )
        zero = {"queued": 0, "scheduled": 0, "running": 0, "failed": 0}
        assert await store.counts([q, other, empty]) == {
            q: {"queued": 1, "scheduled": 1, "running": 1, "failed": 1},
            other: {**zero, "queued": 1},
            empty: zero,
        }
        everything = await store.counts()
        assert everything[q] == {"queued": 1, "scheduled": 1, "running": 1, "failed": 1}
        assert everything[other]["queued"] == 1 and empty not in everything

    # -- wake-ups ------------------------------------------------------------------------

    async def _assert_wakes(self, store: TaskStore, q: str, act: Callable[[], Awaitable[Any]]):
        waiting = asyncio.ensure_future(store.wait([new_queue("elsewhere"), q], 10))
        try:
            # wait must not return while nothing is claimable (this also lets it settle).
            await asyncio.sleep(0.2)
            assert not waiting.done()
            started = time.monotonic()
            await act()
            await asyncio.wait_for(waiting, 3)
            assert time.monotonic() - started < 1.0
        finally:
            waiting.cancel()

    @staticmethod
    async def _claim_soon(store: TaskStore, q: str) -> Any:
        for _ in range(100):
            found = await store.claim([q], "w", 1, LEASE)
            if found:
                [claimed] = found
                return claimed
            await asyncio.sleep(0.002)
        raise AssertionError("the task retried to now was not claimable 0.2 s later")

    async def test_wait_returns_promptly_on_enqueue(self, store: TaskStore) -> None:
        q = new_queue()
        await self._assert_wakes(store, q, lambda: store.enqueue(new_record(q)))
        assert len(await store.claim([q], "w", 5, LEASE)) == 1

    async def test_wait_returns_on_retry_to_now_release_and_requeue(self, store: TaskStore) -> None:
        q = new_queue()
        record = new_record(q)
        await store.enqueue(record)
        [claimed] = await store.claim([q], "w", 1, LEASE)
        await self._assert_wakes(store, q, lambda: store.release(claimed, "w"))
        [claimed] = await store.claim([q], "w", 1, LEASE)
        retried = replace(claimed, errors=[error()])
        await self._assert_wakes(store, q, lambda: store.retry(retried, "w", time.time()))
        # Due "now" means due within the millisecond: a store never runs a task before its
        # time (Redis rounds it up to the next ms), and the claim may come in the same one.
        claimed = await self._claim_soon(store, q)
        failed = replace(claimed, status=FAILED, finished_at=time.time(), errors=[error()])
        assert await store.finish(failed, "w", 60)
        await self._assert_wakes(store, q, lambda: store.requeue(record.id))
        assert ids(await store.claim([q], "w", 1, LEASE)) == [record.id]

    async def test_wait_times_out_when_nothing_comes(self, store: TaskStore) -> None:
        q = new_queue()
        started = time.monotonic()
        await asyncio.wait_for(store.wait([q], 0.3), 3)
        assert 0.25 <= time.monotonic() - started < 1.5

    async def test_a_task_enqueued_before_wait_is_claimable_after_it(
        self, store: TaskStore
    ) -> None:
        q = new_queue()
        record = new_record(q)
        await store.enqueue(record)
        await asyncio.wait_for(store.wait([q], 0.3), 3)  # may return at once: allowed
        assert ids(await store.claim([q], "w", 1, LEASE)) == [record.id]

    # -- housekeeping --------------------------------------------------------------------

    async def test_flush_forgets_everything(self, store: TaskStore) -> None:
        q = new_queue()
        queued, running = new_record(q), new_record(q)
        await store.enqueue(running)
        await store.claim([q], "w", 1, LEASE)
        await store.enqueue(queued)
        await store.flush()
        assert await store.get(queued.id) is None and await store.get(running.id) is None
        assert await store.counts() == {}
        assert await store.claim([q], "w", 5, LEASE) == []

    async def test_close_leaves_the_store_usable(self, store: TaskStore) -> None:
        q = new_queue()
        record = new_record(q)
        await store.enqueue(record)
        await store.close()
        assert await store.get(record.id) == record
        assert ids(await store.claim([q], "w", 1, LEASE)) == [record.id]
