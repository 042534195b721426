"""Django's ``TaskResult`` to the store's :class:`~switchboard.layers.stores.tasks.TaskRecord`
and back, and the task a record names.

A record holds times as epoch seconds; a ``TaskResult`` holds datetimes, aware when
``USE_TZ`` is on (as ``django.utils.timezone.now()`` gives them).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from traceback import format_exception
from typing import Any

from django.conf import settings
from django.utils.crypto import get_random_string
from django.utils.module_loading import import_string

from switchboard.layers.stores.tasks import READY, TaskRecord
from switchboard.tasks.api import Task, TaskError, TaskResult, TaskResultStatus
from switchboard.tasks.errors import TaskNotFound

__all__ = ["error_entry", "find_task", "new_record", "new_result", "to_result"]


def _stamp(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _datetime(stamp: float | None) -> datetime | None:
    if stamp is None:
        return None
    if settings.USE_TZ:
        return datetime.fromtimestamp(stamp, tz=UTC)
    return datetime.fromtimestamp(stamp)


def new_record(task: Any, result: Any, now: float) -> TaskRecord:
    """The record of a task being enqueued, from the ``TaskResult`` handed to the caller."""
    return TaskRecord(
        id=result.id,
        path=task.module_path,
        queue=task.queue_name,
        priority=task.priority,
        args=result.args,
        kwargs=result.kwargs,
        backend=result.backend,
        takes_context=task.takes_context,
        run_after=_stamp(task.run_after),
        status=READY,
        enqueued_at=now,
    )


def new_result(task: Any, backend_alias: str, args: Any, kwargs: Any, now: float) -> Any:
    """A READY ``TaskResult``; Django's own error for arguments that aren't JSON."""
    return TaskResult(
        task=task,
        id=get_random_string(32),
        status=TaskResultStatus.READY,
        enqueued_at=_datetime(now),
        started_at=None,
        finished_at=None,
        last_attempted_at=None,
        args=list(args),
        kwargs=dict(kwargs),
        backend=backend_alias,
        errors=[],
        worker_ids=[],
    )


def find_task(path: str) -> Any:
    """The task at module path ``path``; :class:`TaskNotFound` saying why when there is none."""
    try:
        found = import_string(path)
    except ImportError as exc:
        raise TaskNotFound(f"cannot import task {path!r}: {exc}") from None
    if not isinstance(found, Task):
        raise TaskNotFound(
            f"{path!r} is a {type(found).__name__}, not a task: decorate it with @task"
        )
    return found


def _unknown_task(*args: Any, **kwargs: Any) -> None:
    """Stands in for a task this process cannot import, so its result can still be read."""
    raise TaskNotFound("this task's module cannot be imported here")


def to_result(record: TaskRecord, task: Any | None = None) -> Any:
    """The ``TaskResult`` of ``record`` (``task``: its task, if the caller found it already)."""
    if task is None:
        try:
            task = find_task(record.path)
        except TaskNotFound:
            task = Task(
                priority=record.priority,
                func=_unknown_task,
                backend=record.backend,
                queue_name=record.queue,
                run_after=None,
            )
    if (task.priority, task.queue_name, task.backend, task.run_after, record.run_after) != (
        record.priority,
        record.queue,
        record.backend,
        None,
        None,
    ):
        # As enqueued (.using()): replace() validates again, which costs; most tasks skip it.
        task = dataclasses.replace(
            task,
            priority=record.priority,
            queue_name=record.queue,
            backend=record.backend,
            run_after=_datetime(record.run_after),
        )
    result = TaskResult(
        task=task,
        id=record.id,
        status=TaskResultStatus(record.status),
        enqueued_at=_datetime(record.enqueued_at),
        started_at=_datetime(record.started_at),
        finished_at=_datetime(record.finished_at),
        last_attempted_at=_datetime(record.last_attempted_at),
        args=record.args,
        kwargs=record.kwargs,
        backend=record.backend,
        errors=[TaskError(**error) for error in record.errors],
        worker_ids=list(record.worker_ids),
    )
    object.__setattr__(result, "_return_value", record.return_value)
    return result


def error_entry(exc: BaseException) -> dict[str, str]:
    """``exc`` as a record keeps it (Django's ``TaskError`` fields)."""
    kind = type(exc)
    return {
        "exception_class_path": f"{kind.__module__}.{kind.__qualname__}",
        "traceback": "".join(format_exception(exc)),
    }
