"""Live progress: a task reports how far it got, browsers watch it, consumers await the end.

Each task has a topic, :func:`progress_topic` (``"task.<result id>"``), published through the
realtime protocol (:mod:`switchboard.realtime`): a page subscribes with ``switchboard.js``
(``sb.subscribe("task." + id, {history: 1})``) on a ``RealtimeConsumer`` that allows the topic,
and gets every publication, the last one again on (re)subscribe. A publication's data::

    {"id": ..., "status": "RUNNING", "fraction": 0.4, "message": "Resizing 4 of 10"}
    {"id": ..., "status": "SUCCESSFUL", "fraction": 1.0, "message": "", "return_value": ...}

(``status`` is Django's; READY again while a failed attempt waits for its retry.) Result ids are
unguessable (32 random characters), so knowing one is the permission to watch it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from switchboard.layers.stores.tasks import RUNNING, SUCCESSFUL, TaskRecord
from switchboard.realtime.history import PUBLICATION_TYPE, publish
from switchboard.tasks.bridge import run_sync

__all__ = [
    "areport_progress",
    "await_result",
    "progress_topic",
    "publish_state",
    "report_progress",
]

logger = logging.getLogger("switchboard.tasks")

# The tasks this process is running, by result id (workers add and remove them): a report
# also lands in the record the worker stores when the attempt ends, so the stored result and
# the last publication keep the last progress without another round trip.
running_records: dict[str, TaskRecord] = {}

# Progress is a live view, not a log: a late subscriber needs the last state only.
HISTORY_SIZE = 1
HISTORY_TTL = 3600.0


def progress_topic(result_id: str) -> str:
    """The realtime topic (and layer group) of a task's progress."""
    return f"task.{result_id}"


def _data(record: TaskRecord) -> dict[str, Any]:
    progress = record.progress or {}
    data = {
        "id": record.id,
        "status": record.status,
        "fraction": 1.0 if record.status == SUCCESSFUL else progress.get("fraction"),
        "message": progress.get("message", ""),
    }
    if record.status == SUCCESSFUL:
        data["return_value"] = record.return_value
    return data


async def _publish(backend: Any, data: dict[str, Any]) -> None:
    layer = backend.layer()
    await publish(progress_topic(data["id"]), data, size=HISTORY_SIZE, ttl=HISTORY_TTL, layer=layer)


async def publish_state(backend: Any, record: TaskRecord) -> None:
    """Tell the task's watchers its state (the worker calls it as each attempt ends). Never
    raises: progress is a view of the result, which is stored already."""
    try:
        await _publish(backend, _data(record))
    except Exception as exc:
        logger.warning("Task %s: could not publish its state (%s)", record.id, exc)


async def areport_progress(context: Any, fraction: float | None = None, message: str = "") -> None:
    """From an async task that takes ``context`` (``@task(takes_context=True)``): publish how
    far it got. ``fraction``: 0 to 1, or None when unknown; ``message``: for people."""
    if fraction is not None and not 0 <= fraction <= 1:
        raise ValueError("fraction must be between 0 and 1, or None")
    result = context.task_result
    backend = result.task.get_backend()
    progress = {"fraction": fraction, "message": str(message)}
    record = running_records.get(result.id)
    if record is not None:
        record.progress = progress
    await backend.store().update_progress(result.id, progress)
    await _publish(backend, {"id": result.id, "status": RUNNING, **progress})


def report_progress(context: Any, fraction: float | None = None, message: str = "") -> None:
    """:func:`areport_progress` for sync tasks."""
    run_sync(areport_progress, context, fraction, message)


async def await_result(result: Any, timeout: float | None = None) -> Any:
    """Wait until the task of ``result`` (a ``TaskResult``) has finished, without polling: the
    worker's last publication wakes the wait. Returns the refreshed ``TaskResult``;
    ``TimeoutError`` after ``timeout`` seconds."""
    backend = result.task.get_backend()
    layer = backend.layer()
    channel = await layer.new_channel("taskwait.")
    group = progress_topic(result.id)
    await layer.group_add(group, channel)
    try:
        async with asyncio.timeout(timeout):
            while True:
                fresh = await backend.aget_result(result.id)  # finished before we joined?
                if fresh.is_finished:
                    return fresh
                message = await layer.receive(channel)
                while not (
                    message.get("type") == PUBLICATION_TYPE
                    and message.get("data", {}).get("status") in ("SUCCESSFUL", "FAILED")
                ):
                    message = await layer.receive(channel)
    finally:
        await layer.group_discard(group, channel)
