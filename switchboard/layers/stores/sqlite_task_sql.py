"""The SQL of the SQLite task store (sqlite_tasks.py): the schema, and one function per
operation, each given a connection and the time. No threads, no event loop: the store runs
every one of them on its own thread, the writing ones inside a ``BEGIN IMMEDIATE`` transaction.

The columns are what claim and list need (``run_after`` is set only while a task is scheduled,
``seq`` is the order of ``enqueue`` calls); the whole record is kept as JSON beside them.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from switchboard.layers.stores.tasks import LOST_ERROR, READY, RUNNING, TaskRecord

__all__ = ["LISTS", "SCHEMA", "TABLE", "connect", "lost_error"]

TABLE = "switchboard_tasks"
SCHEMA = (
    f"""CREATE TABLE IF NOT EXISTS {TABLE} (
        id TEXT PRIMARY KEY,
        queue TEXT NOT NULL,
        priority INTEGER NOT NULL,
        status TEXT NOT NULL,
        seq INTEGER NOT NULL,
        enqueued_at REAL NOT NULL,
        run_after REAL,
        lease_holder TEXT,
        lease_until REAL,
        attempted_at REAL,
        finished_at REAL,
        expires_at REAL,
        record TEXT NOT NULL
    )""",
    # Claim order; a partial index so finished and leased tasks cost claims nothing.
    f"""CREATE INDEX IF NOT EXISTS {TABLE}_claim ON {TABLE} (queue, priority DESC, enqueued_at, seq)
        WHERE status = 'READY' AND run_after IS NULL""",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_due ON {TABLE} (run_after) WHERE run_after IS NOT NULL",
    f"""CREATE INDEX IF NOT EXISTS {TABLE}_lease ON {TABLE} (lease_until)
        WHERE status = 'RUNNING'""",
    f"""CREATE INDEX IF NOT EXISTS {TABLE}_expiry ON {TABLE} (expires_at)
        WHERE expires_at IS NOT NULL""",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_finished ON {TABLE} (status, finished_at)",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_seq ON {TABLE} (seq)",
)

# The task is held by a worker (its lease may have run out, as long as nobody took it since).
HELD = "id = ? AND status = 'RUNNING' AND lease_holder = ?"
QUEUED = "status = 'READY' AND (run_after IS NULL OR run_after <= :now)"
LIVE = "(expires_at IS NULL OR expires_at > :now)"
LISTS: dict[str, tuple[str, str]] = {
    "queued": (QUEUED, "priority DESC, enqueued_at, seq"),
    "scheduled": ("status = 'READY' AND run_after > :now", "run_after, seq"),
    "running": ("status = 'RUNNING'", "attempted_at, seq"),
    "failed": (f"status = 'FAILED' AND {LIVE}", "finished_at, seq"),
}


def _stamp(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds")


def lost_error(holder: str, lease_until: float, now: float) -> dict[str, str]:
    """The ``errors`` entry of a task whose worker lost it."""
    return {
        "exception_class_path": LOST_ERROR,
        "traceback": (
            f"Worker {holder!r} lost this task: its lease ran out at {_stamp(lease_until)} "
            f"(the worker died, froze or could not reach the store) and it was queued again "
            f"at {_stamp(now)}."
        ),
    }


def connect(path: str | None, busy_timeout: float) -> sqlite3.Connection:
    """A connection (autocommit: the store begins its own transactions) to ``path``, or to a
    new in-memory database when None, with the schema in place."""
    if path is None:
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    else:
        # Made 0600 here: SQLite gives its -wal and -shm files the database's permissions.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        conn = sqlite3.connect(
            path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            _use_wal(conn, busy_timeout)
        except BaseException:
            conn.close()
            raise
        conn.execute("PRAGMA synchronous=NORMAL")  # WAL keeps it consistent on a crash
    try:
        conn.execute("BEGIN IMMEDIATE")  # two processes creating the schema at once: in turn
        for statement in SCHEMA:
            conn.execute(statement)
        conn.execute("COMMIT")
    except BaseException:
        conn.close()
        raise
    return conn


def _use_wal(conn: sqlite3.Connection, busy_timeout: float) -> None:
    """Put the file in WAL mode (it stays so). Switching needs the file to itself and SQLite
    does not wait for that (no busy handler), so a process racing to create it retries."""
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return  # WAL, or a filesystem without it: BEGIN IMMEDIATE still keeps claims safe
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def insert(conn: sqlite3.Connection, now: float, record: TaskRecord) -> None:
    due = record.run_after if record.run_after is not None and record.run_after > now else None
    enqueued = record.enqueued_at if record.enqueued_at is not None else now
    values = (record.id, record.queue, record.priority, enqueued, due, record.to_json())
    try:
        conn.execute(
            f"""INSERT INTO {TABLE} (id, queue, priority, status, seq, enqueued_at, run_after,
                record) VALUES (?, ?, ?, 'READY', (SELECT COALESCE(MAX(seq), 0) + 1 FROM {TABLE}),
                ?, ?, ?)""",
            values,
        )
    except sqlite3.IntegrityError:
        raise ValueError(f"A task with id {record.id!r} is already stored") from None


def housekeep(conn: sqlite3.Connection, now: float) -> set[str]:
    """Drop expired records, make due tasks queued, put expired leases back; returns the
    queues whose leases ran out."""
    drop_expired(conn, now)
    conn.execute(f"UPDATE {TABLE} SET run_after = NULL WHERE run_after <= ?", (now,))
    lost = conn.execute(
        f"""SELECT id, queue, lease_holder, lease_until, record FROM {TABLE}
            WHERE status = 'RUNNING' AND lease_until <= ?""",
        (now,),
    ).fetchall()
    for task_id, _queue, holder, lease_until, text in lost:
        record = TaskRecord.from_json(text)
        record.status = READY
        record.errors.append(lost_error(holder, lease_until, now))
        conn.execute(
            f"""UPDATE {TABLE} SET status = 'READY', lease_holder = NULL, lease_until = NULL,
                attempted_at = NULL, record = ? WHERE id = ?""",
            (record.to_json(), task_id),
        )
    return {row[1] for row in lost}


def claim(
    conn: sqlite3.Connection,
    now: float,
    queues: list[str],
    worker: str,
    count: int,
    lease: float,
) -> tuple[list[tuple[str, TaskRecord]], set[str]]:
    """The claimed tasks (each with its record as it was before), and the queues whose
    expired leases were put back."""
    recovered = housekeep(conn, now)
    taken: list[tuple[str, TaskRecord]] = []
    for queue in queues:
        room = count - len(taken)
        if room <= 0:
            break
        rows = conn.execute(
            f"""SELECT id, record FROM {TABLE}
                WHERE queue = ? AND status = 'READY' AND run_after IS NULL
                ORDER BY priority DESC, enqueued_at, seq LIMIT ?""",
            (queue, room),
        ).fetchall()
        for task_id, text in rows:
            record = TaskRecord.from_json(text)
            record.status = RUNNING
            record.worker_ids.append(worker)
            record.last_attempted_at = now
            if record.started_at is None:
                record.started_at = now
            conn.execute(
                f"""UPDATE {TABLE} SET status = 'RUNNING', lease_holder = ?, lease_until = ?,
                    attempted_at = ?, record = ? WHERE id = ?""",
                (worker, now + lease, now, record.to_json(), task_id),
            )
            taken.append((text, record))
    return taken, recovered


def unclaim(
    conn: sqlite3.Connection, now: float, taken: list[tuple[str, TaskRecord]], worker: str
) -> None:
    """Undo a claim whose caller was cancelled before it got the tasks."""
    for text, record in taken:
        conn.execute(
            f"""UPDATE {TABLE} SET status = 'READY', lease_holder = NULL, lease_until = NULL,
                attempted_at = NULL, record = ? WHERE {HELD}""",
            (text, record.id, worker),
        )


def extend(
    conn: sqlite3.Connection, now: float, ids: list[str], worker: str, lease: float
) -> list[str]:
    lost = []
    for task_id in ids:
        cursor = conn.execute(
            f"UPDATE {TABLE} SET lease_until = ? WHERE {HELD}", (now + lease, task_id, worker)
        )
        if cursor.rowcount != 1:
            lost.append(task_id)
    return lost


def finish(
    conn: sqlite3.Connection, now: float, record: TaskRecord, worker: str, ttl: float
) -> bool:
    finished_at = record.finished_at if record.finished_at is not None else now
    cursor = conn.execute(
        f"""UPDATE {TABLE} SET status = ?, lease_holder = NULL, lease_until = NULL,
            run_after = NULL, finished_at = ?, expires_at = ?, record = ? WHERE {HELD}""",
        (record.status, finished_at, now + ttl, record.to_json(), record.id, worker),
    )
    return cursor.rowcount == 1


def put_back(
    conn: sqlite3.Connection, now: float, record: TaskRecord, worker: str, run_at: float | None
) -> bool:
    """A held task READY again: scheduled at ``run_at``, or queued (None or not in the future)."""
    due = run_at if run_at is not None and run_at > now else None
    cursor = conn.execute(
        f"""UPDATE {TABLE} SET status = 'READY', lease_holder = NULL, lease_until = NULL,
            attempted_at = NULL, run_after = ?, finished_at = NULL, expires_at = NULL,
            record = ? WHERE {HELD}""",
        (due, replace(record, status=READY).to_json(), record.id, worker),
    )
    return cursor.rowcount == 1


def settle(conn: sqlite3.Connection, now: float, items: list[Any], worker: str) -> list[bool]:
    """Several finish/retry/release writes in one transaction (see ``TaskStore.settle``)."""
    done = []
    for action, record, value in items:
        if action == "finish":
            done.append(finish(conn, now, record, worker, value))
        else:
            done.append(put_back(conn, now, record, worker, value if action == "retry" else None))
    return done


def set_progress(
    conn: sqlite3.Connection, now: float, task_id: str, progress: dict[str, Any]
) -> None:
    row = conn.execute(
        f"SELECT record FROM {TABLE} WHERE id = ? AND status = 'RUNNING'", (task_id,)
    ).fetchone()
    if row is not None:
        record = TaskRecord.from_json(row[0])
        record.progress = progress
        conn.execute(f"UPDATE {TABLE} SET record = ? WHERE id = ?", (record.to_json(), task_id))


def requeue(conn: sqlite3.Connection, now: float, task_id: str) -> str | None:
    """Queue a FAILED task again; its queue, or None if it is not FAILED."""
    row = conn.execute(
        f"SELECT queue, record FROM {TABLE} WHERE id = :id AND status = 'FAILED' AND {LIVE}",
        {"id": task_id, "now": now},
    ).fetchone()
    if row is None:
        return None
    record = TaskRecord.from_json(row[1])
    record.status = READY
    record.finished_at = None
    record.retry_floor = len(record.errors)
    conn.execute(
        f"""UPDATE {TABLE} SET status = 'READY', run_after = NULL, finished_at = NULL,
            expires_at = NULL, record = ? WHERE id = ?""",
        (record.to_json(), task_id),
    )
    return str(row[0])


def drop_expired(conn: sqlite3.Connection, now: float) -> None:
    conn.execute(f"DELETE FROM {TABLE} WHERE expires_at <= ?", (now,))


def flush(conn: sqlite3.Connection, now: float) -> None:
    conn.execute(f"DELETE FROM {TABLE}")


# -- reads -------------------------------------------------------------------------------------


def get(conn: sqlite3.Connection, now: float, task_id: str) -> tuple[TaskRecord | None, bool]:
    """The task's record (None if unknown or expired), and whether it has expired."""
    row = conn.execute(
        f"SELECT record, expires_at FROM {TABLE} WHERE id = ?", (task_id,)
    ).fetchone()
    if row is None:
        return None, False
    if row[1] is not None and row[1] <= now:
        return None, True
    return TaskRecord.from_json(row[0]), False


def any_expired(conn: sqlite3.Connection, now: float) -> bool:
    return bool(
        conn.execute(f"SELECT 1 FROM {TABLE} WHERE expires_at <= ? LIMIT 1", (now,)).fetchall()
    )


def list_tasks(
    conn: sqlite3.Connection, now: float, state: str, queue: str | None, limit: int
) -> list[TaskRecord]:
    where, order = LISTS[state]
    if queue is not None:
        where += " AND queue = :queue"
    rows = conn.execute(
        f"SELECT record FROM {TABLE} WHERE {where} ORDER BY {order} LIMIT :limit",
        {"now": now, "queue": queue, "limit": limit},
    ).fetchall()
    return [TaskRecord.from_json(text) for (text,) in rows]


def counts(
    conn: sqlite3.Connection, now: float, queues: list[str] | None
) -> dict[str, dict[str, int]]:
    sql = f"""SELECT queue,
            COALESCE(SUM(status = 'READY' AND (run_after IS NULL OR run_after <= ?)), 0),
            COALESCE(SUM(status = 'READY' AND run_after > ?), 0),
            COALESCE(SUM(status = 'RUNNING'), 0),
            COALESCE(SUM(status = 'FAILED'), 0)
        FROM {TABLE} WHERE (expires_at IS NULL OR expires_at > ?)"""
    params: list[Any] = [now, now, now]
    if queues is not None:
        if not queues:
            return {}
        sql += f" AND queue IN ({_marks(queues)})"
        params += queues
    found = {
        queue: {"queued": q, "scheduled": s, "running": r, "failed": f}
        for queue, q, s, r, f in conn.execute(sql + " GROUP BY queue", params).fetchall()
    }
    if queues is None:
        return found
    return {
        q: found.get(q, {"queued": 0, "scheduled": 0, "running": 0, "failed": 0}) for q in queues
    }


def until_claimable(conn: sqlite3.Connection, now: float, queues: list[str]) -> float | None:
    """Seconds until a task of ``queues`` may be claimable: 0 when one is queued now, else
    until the next scheduled one is due or the next lease runs out (None: nothing will be)."""
    if not queues:
        return None
    marks = _marks(queues)
    row = conn.execute(
        f"""SELECT
            (SELECT 1 FROM {TABLE} WHERE queue IN ({marks}) AND status = 'READY'
                AND run_after IS NULL LIMIT 1),
            (SELECT MIN(run_after) FROM {TABLE} WHERE queue IN ({marks})
                AND run_after IS NOT NULL),
            (SELECT MIN(lease_until) FROM {TABLE} WHERE queue IN ({marks})
                AND status = 'RUNNING')""",
        queues * 3,
    ).fetchone()
    if row[0]:
        return 0.0
    times = [t for t in row[1:] if t is not None]
    return max(0.0, min(times) - now) if times else None


def _marks(queues: Sequence[str]) -> str:
    return ", ".join("?" * len(queues))
