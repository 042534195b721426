"""The exceptions a task run can end with besides the task's own: their import paths are what
``TaskResult.errors`` records (``TaskError.exception_class`` imports them back)."""

from __future__ import annotations

from switchboard.layers.stores.tasks import LOST_ERROR

__all__ = ["Retry", "TaskNotFound", "TaskTimeout", "WorkerLost"]


class Retry(Exception):  # noqa: N818 (a request, not an error: Celery's and RQ's users know it)
    """Raised by a task to be run again after ``delay`` seconds (None: the backoff policy's
    delay). The attempt counts against ``max_attempts`` like a failure; when none is left the
    task is FAILED with this error."""

    def __init__(self, reason: str = "", delay: float | None = None) -> None:
        super().__init__(reason or "the task asked to be retried")
        if delay is not None and delay < 0:
            raise ValueError("Retry delay must be 0 or more seconds")
        self.delay = delay


class TaskTimeout(Exception):  # noqa: N818 (named as the condition users search for)
    """An attempt ran past its ``timeout``: an async task is cancelled; a sync task's thread
    cannot be stopped, so its result is ignored and its thread slot stays taken until it
    returns (see docs/topics/tasks.md)."""


class WorkerLost(Exception):  # noqa: N818
    """The worker running the task stopped renewing its lease (killed, or frozen) and the task
    was handed to another worker."""


class TaskNotFound(Exception):  # noqa: N818
    """The worker cannot import the task's module path, or the path names no task."""


assert f"{WorkerLost.__module__.rsplit('.', 1)[0]}.{WorkerLost.__qualname__}" == LOST_ERROR
