"""A task store in SQLite: the in-memory layer's (a private in-memory database) and the IPC
layer's (a database file every process of the machine shares). See
:mod:`switchboard.layers.stores.tasks` for the rules it keeps.

Design, and why:

* **One worker thread per store.** SQLite calls block, so every one runs in the store's own
  single-thread executor: an event loop never waits on the disk or on another process's lock,
  and the calls of this process are serialised. Nothing is bound to an event loop, so one store
  serves several loops and threads at once (the in-memory layer's tasks may be enqueued on a
  server loop and run by a worker on another thread's loop).
* **Short write transactions.** Every change is one ``BEGIN IMMEDIATE`` transaction (the write
  lock is taken up front, waiting up to ``busy_timeout`` for other processes), so two workers
  can never both claim a task; the file is in WAL mode, so readers do not block the writer.
* **Columns for what claim and list need, JSON for the rest.** ``queue``, ``priority``,
  ``status``, ``seq`` (the order of ``enqueue`` calls), ``run_after`` (set only while a task is
  scheduled), the lease holder and deadline, ``finished_at`` and ``expires_at`` are columns,
  indexed for claim order and for the scans of due tasks, expired leases and expired records;
  the whole :class:`~switchboard.layers.stores.tasks.TaskRecord` is kept as JSON beside them.
* **Claim does the housekeeping**, in its transaction: expired records go, due scheduled tasks
  become queued, expired leases are put back (with a :data:`LOST_ERROR` entry), then up to
  ``count`` tasks are taken. ``get`` and ``list`` never show an expired record either.
* **Wake-ups** come from the ``notifier`` (task_wakeups.py): every change that may make a task
  claimable notifies its queue, and ``wait`` also ends when the next scheduled task is due or
  the next lease runs out, so a dead worker's task is taken again promptly.
"""

from __future__ import annotations

import asyncio
import builtins
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from switchboard.layers.stores import sqlite_task_sql as sql
from switchboard.layers.stores.task_wakeups import TaskWakeups
from switchboard.layers.stores.tasks import READY, ListableState, Settlement, TaskRecord

__all__ = ["SqliteTaskStore"]

T = TypeVar("T")

# Connections left behind by a fork: closing them in the child could disturb the parent's
# locks, and letting them be collected would close them; so they are kept, unused.
_abandoned: list[sqlite3.Connection] = []


class _Database:
    """The store's connection, apart from the store so that a finalizer can close it."""

    conn: sqlite3.Connection | None = None

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()


class SqliteTaskStore:
    """Background task queues in SQLite (see the module docstring).

    ``path``: None for a database in this store's memory (one process), or a file shared by
    every process that opens it. ``notifier``: the wake-ups between ``enqueue`` and ``wait``
    (task_wakeups.py). ``busy_timeout``: how long a transaction waits for another process's.
    """

    def __init__(
        self, path: str | None, notifier: TaskWakeups, *, busy_timeout: float = 10.0
    ) -> None:
        self.path = path
        self.notifier = notifier
        self.busy_timeout = busy_timeout
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="switchboard-tasks")
        self._db = _Database()  # used on the executor's thread only
        # A store nobody holds has no job queued (a job holds it): its connection can go.
        weakref.finalize(self, self._db.close)

    def __repr__(self) -> str:
        return f"<SqliteTaskStore path={self.path or ':memory:'!r}>"

    # -- the store's thread -----------------------------------------------------------

    def _submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        with self._lock:
            if os.getpid() != self._pid:
                # Forked: the parent's thread is not here; its connection to a file is not ours.
                self._pid = os.getpid()
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="switchboard-tasks")
                if self.path is not None and self._db.conn is not None:
                    _abandoned.append(self._db.conn)
                    self._db.conn = None
            return self._executor.submit(fn, *args)

    def _connection(self) -> sqlite3.Connection:
        if self._db.conn is None:
            self._db.conn = sql.connect(self.path, self.busy_timeout)
        return self._db.conn

    def _transaction(self, fn: Callable[..., T], *args: Any) -> T:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn, time.time(), *args)  # the time once the lock is ours
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # the next BEGIN would fail on a transaction left open
                conn.execute("ROLLBACK")
            raise
        return result

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.wrap_future(self._submit(self._transaction, fn, *args))

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.wrap_future(self._submit(fn, *args))

    # -- the TaskStore API --------------------------------------------------------------

    async def enqueue(self, record: TaskRecord) -> None:
        if record.status != READY:
            raise ValueError(f"Only READY tasks are enqueued, not {record.status}")
        await self._write(sql.insert, record)
        await self.notifier.notify([record.queue])  # scheduled too: waits re-read due times

    async def claim(
        self, queues: Sequence[str], worker_id: str, count: int, lease: float
    ) -> builtins.list[TaskRecord]:
        if count <= 0 or not queues:
            return []
        job = self._submit(
            self._transaction, sql.claim, list(dict.fromkeys(queues)), worker_id, count, lease
        )
        try:
            taken, recovered = await asyncio.wrap_future(job)
        except asyncio.CancelledError:
            job.add_done_callback(lambda done: self._give_back(done, worker_id))
            raise
        if recovered:  # waiters may take what this claim left of them
            await self.notifier.notify(recovered)
        return [record for _text, record in taken]

    def _give_back(self, job: Future[Any], worker_id: str) -> None:
        # A claim that ran although its caller was cancelled: nobody will run what it took.
        if not job.cancelled() and job.exception() is None and job.result()[0]:
            self._submit(self._transaction, sql.unclaim, job.result()[0], worker_id)

    async def extend(self, ids: Sequence[str], worker_id: str, lease: float) -> builtins.list[str]:
        if not ids:
            return []
        return await self._write(sql.extend, list(ids), worker_id, lease)

    async def finish(self, record: TaskRecord, worker_id: str, ttl: float) -> bool:
        if not record.finished:
            raise ValueError(f"A finished task is SUCCESSFUL or FAILED, not {record.status}")
        return await self._write(sql.finish, record, worker_id, ttl)

    async def retry(self, record: TaskRecord, worker_id: str, run_at: float) -> bool:
        done = await self._write(sql.put_back, record, worker_id, run_at)
        if done:
            await self.notifier.notify([record.queue])
        return done

    async def release(self, record: TaskRecord, worker_id: str) -> bool:
        done = await self._write(sql.put_back, record, worker_id, None)
        if done:
            await self.notifier.notify([record.queue])
        return done

    async def settle(self, items: Sequence[Settlement], worker_id: str) -> list[bool]:
        for action, record, _ in items:
            if action == "finish" and not record.finished:
                raise ValueError(f"A finished task is SUCCESSFUL or FAILED, not {record.status}")
        done = await self._write(sql.settle, list(items), worker_id)
        woken = {r.queue for (a, r, _), ok in zip(items, done, strict=True) if ok and a != "finish"}
        if woken:
            await self.notifier.notify(sorted(woken))
        return done

    async def update_progress(self, task_id: str, progress: dict[str, Any]) -> None:
        await self._write(sql.set_progress, task_id, progress)

    async def get(self, task_id: str) -> TaskRecord | None:
        return await self._read(self._get, task_id)

    def _get(self, task_id: str) -> TaskRecord | None:
        record, expired = sql.get(self._connection(), time.time(), task_id)
        if expired:
            self._transaction(sql.drop_expired)
        return record

    async def list(
        self, state: ListableState, queue: str | None = None, limit: int = 100
    ) -> builtins.list[TaskRecord]:
        if state not in sql.LISTS:
            raise ValueError(f"Unknown task state {state!r}")
        if limit <= 0:
            return []
        return await self._read(self._list, state, queue, limit)

    def _list(self, state: str, queue: str | None, limit: int) -> builtins.list[TaskRecord]:
        conn, now = self._connection(), time.time()
        if sql.any_expired(conn, now):
            self._transaction(sql.drop_expired)
        return sql.list_tasks(conn, now, state, queue, limit)

    async def requeue(self, task_id: str) -> bool:
        queue = await self._write(sql.requeue, task_id)
        if queue is None:
            return False
        await self.notifier.notify([queue])
        return True

    async def counts(self, queues: Sequence[str] | None = None) -> dict[str, dict[str, int]]:
        names = None if queues is None else list(queues)
        return await self._read(lambda: sql.counts(self._connection(), time.time(), names))

    async def wait(self, queues: Sequence[str], timeout: float) -> None:
        names = list(dict.fromkeys(queues))

        async def ready() -> float | None:
            return await self._read(
                lambda: sql.until_claimable(self._connection(), time.time(), names)
            )

        await self.notifier.wait(names, timeout, ready)

    async def flush(self) -> None:
        await self._write(sql.flush)

    async def close(self) -> None:
        """Close the database file (reopened by the next call) and let go of this event
        loop's wake-ups. An in-memory database is kept: closing it would lose the tasks."""
        if self.path is not None:
            await self._read(self._db.close)
        await self.notifier.close()
