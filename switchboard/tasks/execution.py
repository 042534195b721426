"""One attempt at a task: call it (a sync task in the worker's thread pool, an async one on the
loop), within its timeout, and turn what happened into the record's next state.

:class:`Outcome` is data; :func:`next_state` decides, without I/O, what the worker stores.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from dataclasses import dataclass
from inspect import iscoroutinefunction
from typing import Any

from django.db import close_old_connections

from switchboard.layers.stores.tasks import FAILED, LOST_ERROR, SUCCESSFUL, TaskRecord
from switchboard.tasks import records
from switchboard.tasks.api import TaskContext, normalize_json
from switchboard.tasks.bridge import home_loop
from switchboard.tasks.errors import Retry, TaskTimeout
from switchboard.tasks.options import Policy
from switchboard.tasks.pool import DaemonThreadPool

__all__ = ["Decision", "Outcome", "attempt", "lost_too_often", "next_state", "redeliveries"]


@dataclass
class Outcome:
    """What one attempt ended with: a JSON return value, or the exception it raised."""

    value: Any = None
    error: BaseException | None = None
    # A sync task's thread still running after its timeout.
    lingering: asyncio.Future[Any] | None = None


@dataclass
class Decision:
    """What to store: ``action`` is "finish" (the record is SUCCESSFUL or FAILED) or "retry"
    (READY again at ``run_at``)."""

    action: str
    run_at: float = 0.0


def failures_since_floor(record: TaskRecord) -> int:
    """Failed attempts that count against ``max_attempts`` (lost workers don't)."""
    counted = record.errors[record.retry_floor :]
    return sum(1 for error in counted if error["exception_class_path"] != LOST_ERROR)


def redeliveries(record: TaskRecord) -> int:
    return sum(1 for error in record.errors if error["exception_class_path"] == LOST_ERROR)


def next_state(record: TaskRecord, outcome: Outcome, policy: Policy, now: float) -> Decision:
    """Update ``record`` for ``outcome`` and say how to store it."""
    if outcome.error is None:
        record.status = SUCCESSFUL
        record.return_value = outcome.value
        record.finished_at = now
        return Decision("finish")
    record.errors.append(records.error_entry(outcome.error))
    failures = failures_since_floor(record)
    if failures < policy.max_attempts:
        delay = outcome.error.delay if isinstance(outcome.error, Retry) else None
        if delay is None:
            delay = policy.delay(failures)
        return Decision("retry", run_at=now + delay)
    record.status = FAILED
    record.finished_at = now
    return Decision("finish")


def lost_too_often(record: TaskRecord, limit: int) -> bool:
    """Whether the task has been handed on from lost workers more than ``limit`` times: it is
    then FAILED (its last error already says ``WorkerLost``) instead of run again."""
    if redeliveries(record) <= limit:
        return False
    record.status = FAILED
    record.finished_at = time.time()
    return True


def _call_sync(task: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    # As Django does around a request: a connection left broken or too old by the previous
    # task (or by the database going away) is not handed to this one.
    close_old_connections()
    try:
        return task.func(*args, **kwargs)
    finally:
        close_old_connections()


async def attempt(task: Any, result: Any, policy: Policy, pool: DaemonThreadPool) -> Outcome:
    """Run ``task`` once for ``result`` (its ``TaskResult``, RUNNING)."""
    args = list(result.args)
    if task.takes_context:
        args.insert(0, TaskContext(task_result=result))
    kwargs = dict(result.kwargs)
    timed_out = TaskTimeout(f"the attempt ran past its timeout of {policy.timeout} s")
    try:
        if iscoroutinefunction(task.func):
            try:
                value = await asyncio.wait_for(task.func(*args, **kwargs), policy.timeout)
            except TimeoutError:
                return Outcome(error=timed_out)
        else:
            context = contextvars.copy_context()
            context.run(home_loop.set, asyncio.get_running_loop())
            future = pool.run(context.run, _call_sync, task, args, kwargs)
            try:
                value = await asyncio.wait_for(asyncio.shield(future), policy.timeout)
            except TimeoutError:
                # The thread can't be stopped: it goes on, and holds its slot until it returns.
                return Outcome(error=timed_out, lingering=future)
        return Outcome(value=normalize_json(value))
    except (asyncio.CancelledError, KeyboardInterrupt):
        raise
    except BaseException as exc:  # SystemExit from a task is the task's failure, not ours
        return Outcome(error=exc)
