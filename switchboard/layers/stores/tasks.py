"""Task queues: background tasks waiting, scheduled, running and finished, across processes.

A layer that keeps tasks offers ``layer.task_store()`` (its ``extensions`` list ``"tasks"``),
one :class:`TaskStore` per layer instance. This package knows nothing of Django: a task here is
a :class:`TaskRecord`, a JSON-able record that :mod:`switchboard.tasks` turns into Django's
``TaskResult`` and back. Implementations: SQLite (:mod:`switchboard.layers.stores.sqlite_tasks`,
in memory for the in-memory layer, in a file beside the IPC layer's socket for one machine) and
Redis (:mod:`switchboard.layers.redis.tasks`, many machines).

The contract every implementation keeps:

* **States.** A task is *queued* (READY, claimable now), *scheduled* (READY, ``run_after`` in
  the future: it becomes queued when due, within a second), *running* (RUNNING, held by one
  worker under a lease) or *finished* (SUCCESSFUL or FAILED). ``status`` uses Django's names.
* **Order.** ``claim`` takes from the queues in the order given; within a queue the highest
  ``priority`` first, then the oldest (``enqueued_at``, then the order of ``enqueue`` calls).
* **At least once.** A claimed task is leased for ``lease`` seconds and the worker renews the
  lease (``extend``). When a lease runs out (the worker died, or froze) the next ``claim`` by
  any worker puts the task back in its queue, appending to ``errors`` one entry whose
  ``exception_class_path`` is :data:`LOST_ERROR`; a later ``finish``/``retry``/``release`` by
  the worker that lost it changes nothing and returns False.
* **Durable as its backend.** Nothing is held only in one worker's memory: queued, scheduled
  and running tasks survive any worker's death (and a Redis restart, when Redis persists).
* **Expiry.** Queued, scheduled and running tasks never expire. A finished task's record
  expires ``ttl`` seconds after ``finish``.
* **Wake-ups.** ``wait`` returns as soon as a task may have become claimable in one of its
  queues (``enqueue``, ``retry`` to now, ``release`` and ``requeue`` wake it), or after
  ``timeout`` seconds. Spurious returns are allowed; missed ones are not (a task enqueued while
  nobody waited is found by the next ``claim``).

Timestamps are seconds since the epoch (``time.time()``), floats.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = [
    "FAILED",
    "LOST_ERROR",
    "LISTABLE_STATES",
    "READY",
    "RUNNING",
    "SUCCESSFUL",
    "TaskRecord",
    "TaskStore",
    "ListableState",
    "Settlement",
]

READY = "READY"
RUNNING = "RUNNING"
SUCCESSFUL = "SUCCESSFUL"
FAILED = "FAILED"

# The error a store records when a running task's lease ran out (its worker died or froze).
LOST_ERROR = "switchboard.tasks.WorkerLost"

ListableState = Literal["queued", "scheduled", "running", "failed"]

# One write of ``settle``: ("finish", record, ttl), ("retry", record, run_at) or
# ("release", record, 0.0), each as the method of that name would do it.
Settlement = tuple[Literal["finish", "retry", "release"], "TaskRecord", float]
LISTABLE_STATES: tuple[ListableState, ...] = ("queued", "scheduled", "running", "failed")


@dataclass
class TaskRecord:
    """One task as a store keeps it. ``args``/``kwargs``/``return_value`` are JSON values;
    each entry of ``errors`` is ``{"exception_class_path": str, "traceback": str}``."""

    id: str
    path: str  # the task function's module path, e.g. "myapp.tasks.send_mail"
    queue: str = "default"
    priority: int = 0
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    backend: str = "default"  # the TASKS alias the task was enqueued through
    takes_context: bool = False
    run_after: float | None = None
    status: str = READY
    enqueued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    last_attempted_at: float | None = None
    worker_ids: list[str] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    return_value: Any = None
    # len(errors) when the task was last re-enqueued by hand: attempts count from there.
    retry_floor: int = 0
    # The last progress the task reported ({"fraction": float | None, "message": str}).
    progress: dict[str, Any] | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> TaskRecord:
        return cls(**json.loads(text))

    @property
    def finished(self) -> bool:
        return self.status in (SUCCESSFUL, FAILED)


@runtime_checkable
class TaskStore(Protocol):
    """See the module docstring for the rules every method keeps."""

    async def enqueue(self, record: TaskRecord) -> None:
        """Keep ``record`` (status READY, a new ``id``): queued, or scheduled when its
        ``run_after`` is in the future."""

    async def claim(
        self, queues: Sequence[str], worker_id: str, count: int, lease: float
    ) -> list[TaskRecord]:
        """Up to ``count`` queued tasks of ``queues``, now RUNNING and leased to ``worker_id``
        for ``lease`` seconds: ``worker_id`` appended to ``worker_ids``, ``last_attempted_at``
        now, ``started_at`` now unless already set. First makes due scheduled tasks queued and
        puts expired leases back (see the module docstring)."""

    async def extend(self, ids: Sequence[str], worker_id: str, lease: float) -> list[str]:
        """Renew ``worker_id``'s leases on ``ids`` to ``lease`` seconds from now; returns the
        ids it no longer holds (lost: another worker has them, or they are gone)."""

    async def finish(self, record: TaskRecord, worker_id: str, ttl: float) -> bool:
        """Store ``record`` as given (status SUCCESSFUL or FAILED, ``finished_at``, ``errors``,
        ``return_value`` set by the caller), no longer running, expiring in ``ttl`` seconds.
        False, changing nothing, unless ``worker_id`` holds the task's lease."""

    async def retry(self, record: TaskRecord, worker_id: str, run_at: float) -> bool:
        """Store ``record`` as given (its new error appended by the caller) as READY again:
        scheduled at ``run_at``, or queued at once when that is not in the future. False,
        changing nothing, unless ``worker_id`` holds the task's lease."""

    async def release(self, record: TaskRecord, worker_id: str) -> bool:
        """Hand a running task back unfinished (a worker shutting down): READY, queued at once,
        its fields stored as given. False, changing nothing, unless ``worker_id`` holds it."""

    async def settle(self, items: Sequence[Settlement], worker_id: str) -> list[bool]:
        """Several ``finish``/``retry``/``release`` writes of ``worker_id``'s tasks in one
        round trip (a busy worker's writes, batched); each item's result, in order."""

    async def update_progress(self, task_id: str, progress: dict[str, Any]) -> None:
        """Set a running task's ``progress`` (nothing happens for an unknown task)."""

    async def get(self, task_id: str) -> TaskRecord | None:
        """The task's record, or None if it never existed or has expired."""

    async def list(
        self, state: ListableState, queue: str | None = None, limit: int = 100
    ) -> list[TaskRecord]:
        """Up to ``limit`` tasks in ``state``, of ``queue`` or of every queue: queued ones in
        claim order, scheduled ones by ``run_after``, running ones by ``last_attempted_at``,
        failed ones by ``finished_at`` (most recent last)."""

    async def requeue(self, task_id: str) -> bool:
        """A FAILED task queued again (READY, ``finished_at`` None, ``retry_floor`` set to
        ``len(errors)``); False if the task is not FAILED or does not exist."""

    async def counts(self, queues: Sequence[str] | None = None) -> dict[str, dict[str, int]]:
        """``{queue: {"queued": n, "scheduled": n, "running": n, "failed": n}}`` for
        ``queues`` (every queue that holds a task when None)."""

    async def wait(self, queues: Sequence[str], timeout: float) -> None:
        """Return when a task may have become claimable in ``queues``, or after ``timeout``."""

    async def flush(self) -> None:
        """Forget every task (tests and ``manage.py tasks purge``)."""

    async def close(self) -> None:
        """Release this event loop's connections (the store stays usable)."""
