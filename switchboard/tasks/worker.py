"""``TaskWorker``: takes tasks from a backend's store and runs them, ``concurrency`` at a time.

Run by ``manage.py runworker --tasks`` (and in-process for a single-process layer). The loop:
claim as many tasks as there are free slots (one store call), run each (execution.py), store
what happened; renew the leases of running tasks every third of the lease; wait for a wake-up
when there is nothing to do. On ``stop()`` it claims nothing more, gives running tasks
``shutdown_timeout`` seconds, then hands the unfinished ones back to the queue for another
worker.

The store being unreachable (Redis restarting) pauses the claim loop and retries every store
write until it lands: a finished task's outcome is never dropped for that.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import sys
import time
from collections.abc import Sequence
from typing import Any

from switchboard.layers.stores.tasks import READY, Settlement, TaskRecord
from switchboard.tasks import records
from switchboard.tasks.api import task_finished, task_started
from switchboard.tasks.errors import TaskNotFound
from switchboard.tasks.execution import (
    Outcome,
    attempt,
    lost_too_often,
    next_state,
    redeliveries,
)
from switchboard.tasks.options import Policy, policy_of
from switchboard.tasks.pool import DaemonThreadPool
from switchboard.tasks.progress import publish_state, running_records
from switchboard.tasks.stats import stats

__all__ = ["TaskWorker"]

logger = logging.getLogger("switchboard.tasks")

# Longest idle wait between claims: what bounds how late a scheduled task can start.
IDLE_WAIT = 0.5
STORE_RETRY_MAX = 1.0
DEPTH_EVERY = 5.0


def new_worker_id() -> str:
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{secrets.token_hex(4)}"


class TaskWorker:
    """Runs ``backend``'s tasks from ``queues`` (None: the backend's QUEUES)."""

    def __init__(
        self,
        backend: Any,
        queues: Sequence[str] | None = None,
        concurrency: int = 8,
        shutdown_timeout: float = 30.0,
        store: Any = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.backend = backend
        self.store = store if store is not None else backend.store()
        self.queues = list(queues) if queues else sorted(backend.queues) or ["default"]
        self.concurrency = concurrency
        self.shutdown_timeout = shutdown_timeout
        self.worker_id = new_worker_id()
        self.settings = backend.settings
        self.running: dict[str, TaskRecord] = {}
        self._attempts: dict[str, asyncio.Task[None]] = {}
        self._lingering = 0  # sync tasks' threads still running past their timeout
        self._slot_freed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._pool: DaemonThreadPool | None = None
        self._writes: list[tuple[Settlement, asyncio.Future[bool], bool]] = []
        self._telling: set[asyncio.Future[Any]] = set()
        self._drained = False  # the last claim emptied the queues: wait before the next
        self._writer: asyncio.Future[None] | None = None
        self.stats = stats

    def stop(self) -> None:
        self._stopping.set()

    def _free(self) -> int:
        return self.concurrency - len(self._attempts) - self._lingering

    # -- the loop -------------------------------------------------------------------------

    async def run(self) -> None:
        store = self.store
        self._pool = DaemonThreadPool(self.concurrency)
        warn = getattr(store, "persistence_warning", None)
        if warn is not None:
            try:
                if message := await warn():
                    logger.warning("%s", message)
            except Exception:  # advice only: a worker starting while Redis is away goes on
                pass
        renewing = asyncio.ensure_future(self._renew_leases(store))
        try:
            await self._claim_loop(store)
        finally:
            await self._drain(store)
            renewing.cancel()
            self._pool.shutdown()

    async def _claim_loop(self, store: Any) -> None:
        pause = 0.05
        next_depths = 0.0
        # Claims wait for half the slots to be free (all of them when idle): one round trip
        # brings several tasks, instead of one per task finished.
        enough = max(1, self.concurrency // 2)
        while not self._stopping.is_set():
            if self._drained:
                self._drained = False
                await self._until(store.wait(self.queues, IDLE_WAIT), IDLE_WAIT)
                continue
            free = self._free()
            if free < enough and (free <= 0 or self._attempts):
                self._slot_freed.clear()
                await self._until(self._slot_freed.wait(), None)
                continue
            try:
                claimed = await store.claim(self.queues, self.worker_id, free, self.settings.lease)
                if time.monotonic() >= next_depths:
                    next_depths = time.monotonic() + DEPTH_EVERY
                    await self._note_depths(store)
            except Exception as exc:
                if sys.is_finalizing() or "after shutdown" in str(exc):
                    return  # the interpreter is exiting under an embedded worker's feet
                logger.warning("Task store unreachable (%s); claiming again in %.2f s", exc, pause)
                await self._until(asyncio.sleep(pause), None)
                pause = min(STORE_RETRY_MAX, pause * 2)
                continue
            pause = 0.05
            if len(claimed) < free:
                # The queues are empty now: claiming again at once would find nothing, so
                # wait. The store wakes the wait for what was enqueued meanwhile.
                self._drained = True
            if not claimed:
                continue
            for record in claimed:
                self.running[record.id] = record
                running_records[record.id] = record
                self._attempts[record.id] = asyncio.ensure_future(self._run_one(store, record))

    async def _until(self, awaitable: Any, timeout: float | None) -> None:
        """``awaitable``, or less if ``stop()`` comes first."""
        waiting = asyncio.ensure_future(awaitable)
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait((waiting, stopping), timeout=timeout, return_when="FIRST_COMPLETED")
        finally:
            for fut in (waiting, stopping):
                if not fut.done():
                    fut.cancel()
            if waiting.done() and not waiting.cancelled() and waiting.exception() is not None:
                logger.debug("wait failed: %r", waiting.exception())

    async def _note_depths(self, store: Any) -> None:
        counts = await store.counts(self.queues)
        self.stats.queue_depths.update({q: c.get("queued", 0) for q, c in counts.items()})

    # -- one task -------------------------------------------------------------------------

    async def _run_one(self, store: Any, record: TaskRecord) -> None:
        try:
            await self._attempt(store, record)
        except asyncio.CancelledError:
            # Shutdown's grace period ran out: hand it back for another worker.
            record.status = READY
            await self._write(store, ("release", record, 0.0))
        except Exception:
            logger.exception("Task %s (%s): the worker failed around it", record.id, record.path)
        finally:
            self.running.pop(record.id, None)
            running_records.pop(record.id, None)
            self._attempts.pop(record.id, None)
            self._slot_freed.set()

    async def _attempt(self, store: Any, record: TaskRecord) -> None:
        if lost_too_often(record, self.settings.max_redeliveries):
            logger.error(
                "Task %s (%s) FAILED: its worker was lost %d times running it",
                record.id,
                record.path,
                redeliveries(record),
            )
            await self._write(store, ("finish", record, self.settings.failed_ttl))
            return
        try:
            task = records.find_task(record.path)
        except TaskNotFound as exc:
            logger.error("Task %s FAILED: %s", record.id, exc)
            # No retry: it would not import any better next time.
            next_state(record, Outcome(error=exc), Policy(), time.time())
            await self._write(store, ("finish", record, self.settings.failed_ttl))
            self.stats.count("failed", record.path.rsplit(".", 1)[-1])  # as task.name would be
            return
        policy = policy_of(task.func, self.settings.policy)
        result = records.to_result(record, task)
        sender = type(self.backend)
        task_started.send(sender=sender, task_result=result)
        self.stats.count("started", task.name)
        started = time.perf_counter()
        assert self._pool is not None
        outcome = await attempt(task, result, policy, self._pool)
        self.stats.ran(task.name, time.perf_counter() - started)
        if outcome.lingering is not None:
            self._hold_slot(outcome.lingering, record)
        decision = next_state(record, outcome, policy, time.time())
        if decision.action == "retry":
            self.stats.count("retried", task.name)
            logger.info(
                "Task %s (%s) failed (%s); retrying in %.1f s",
                record.id,
                record.path,
                record.errors[-1]["exception_class_path"],
                decision.run_at - time.time(),
            )
            await self._write(store, ("retry", record, decision.run_at), task.takes_context)
            return
        ttl = self.settings.result_ttl if outcome.error is None else self.settings.failed_ttl
        if await self._write(store, ("finish", record, ttl), task.takes_context):
            self.stats.count("succeeded" if outcome.error is None else "failed", task.name)
            if outcome.error is not None:
                logger.error(
                    "Task %s (%s) FAILED after %d attempt(s): %s",
                    record.id,
                    record.path,
                    len(record.worker_ids),
                    record.errors[-1]["traceback"].rstrip().rsplit("\n", 1)[-1],
                )
            finished = records.to_result(record, task)
            if outcome.error is None:
                task_finished.send(sender=sender, task_result=finished)
            else:
                # Django's receivers log a failure with the exception at hand, as sent from
                # inside its handler by Django's own backends.
                try:
                    raise outcome.error
                except BaseException:
                    task_finished.send(sender=sender, task_result=finished)

    def _hold_slot(self, thread: asyncio.Future[Any], record: TaskRecord) -> None:
        self._lingering += 1
        logger.error(
            "Task %s (%s) ran past its timeout; its thread cannot be stopped and keeps a slot "
            "of this worker until it returns",
            record.id,
            record.path,
        )

        def done(_: Any) -> None:
            self._lingering -= 1
            self._slot_freed.set()

        thread.add_done_callback(done)

    async def _write(self, store: Any, item: Settlement, takes_context: bool = False) -> bool:
        """Store an attempt's end (``finish``/``retry``/``release``, as ``store.settle`` takes
        them): True once written, False when this worker no longer holds the task. Writes that
        come while one is on its way go together in the next (one round trip for a busy
        worker's many tasks)."""
        written: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._writes.append((item, written, takes_context))
        if self._writer is None:
            self._writer = asyncio.ensure_future(self._write_all(store))
        return await written

    async def _write_all(self, store: Any) -> None:
        try:
            while self._writes:
                batch, self._writes = self._writes, []
                done = await self._settle(store, [item for item, _, _ in batch])
                told = []
                for ((action, record, _), written, takes_context), ok in zip(
                    batch, done, strict=True
                ):
                    if ok and action != "release":
                        told.append(publish_state(self.backend, record, takes_context))
                    if not ok:
                        logger.warning(
                            "Task %s (%s): its lease was lost (another worker has it); this "
                            "attempt's %s is dropped",
                            record.id,
                            record.path,
                            action,
                        )
                    if not written.done():
                        written.set_result(ok)
                if told:  # all in one tick: the layer sends them in one round trip
                    self._telling.add(task := asyncio.ensure_future(asyncio.gather(*told)))
                    task.add_done_callback(self._telling.discard)
        finally:
            self._writer = None

    async def _settle(self, store: Any, items: list[Any]) -> list[bool]:
        """``store.settle(items)``, retried while the store is unreachable (until the worker
        stops and its grace period is over: the leases then bring the tasks back)."""
        pause = 0.05
        deadline: float | None = None
        while True:
            try:
                return [bool(ok) for ok in await store.settle(items, self.worker_id)]
            except Exception as exc:
                if self._stopping.is_set():
                    deadline = deadline or time.monotonic() + self.shutdown_timeout
                    if time.monotonic() > deadline:
                        logger.error("Could not store %d task outcome(s): %s", len(items), exc)
                        return [False] * len(items)
                logger.warning("Task store unreachable (%s); storing outcomes again", exc)
                await asyncio.sleep(pause)
                pause = min(STORE_RETRY_MAX, pause * 2)

    # -- leases and shutdown --------------------------------------------------------------

    async def _renew_leases(self, store: Any) -> None:
        every = self.settings.lease / 3
        while True:
            await asyncio.sleep(every)
            ids = list(self.running)
            if not ids:
                continue
            try:
                lost = await store.extend(ids, self.worker_id, self.settings.lease)
            except Exception as exc:
                logger.warning("Could not renew task leases (%s)", exc)
                continue
            for task_id in lost:
                logger.warning("Task %s: lease lost to another worker", task_id)

    async def _drain(self, store: Any) -> None:
        attempts = list(self._attempts.values())
        if not attempts:
            return
        logger.info(
            "Stopping: %d running task(s) get %.0f s to finish",
            len(attempts),
            self.shutdown_timeout,
        )
        _done, pending = await asyncio.wait(attempts, timeout=self.shutdown_timeout)
        for waiting in pending:
            waiting.cancel()
        if pending:
            await asyncio.wait(pending)
            logger.warning("Handed %d unfinished task(s) back to the queue", len(pending))
