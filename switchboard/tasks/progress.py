"""Live progress: a task reports how far it got, browsers watch it, consumers await the end.

A task that takes the context (``@task(takes_context=True)``) has a topic,
:func:`progress_topic` (``"task.<result id>"``), published through the realtime protocol
(:mod:`switchboard.realtime`) with each report and with the state each attempt ends in: a
page subscribes with ``switchboard.js``
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
from switchboard.realtime.history import publish
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

DONE_TYPE = "task.done"

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


def done_group(result_id: str) -> str:
    """The layer group :func:`await_result` waits in: told when the task has finished."""
    return f"taskdone.{result_id}"


async def publish_state(backend: Any, record: TaskRecord, takes_context: bool) -> None:
    """Tell the task's watchers its state, once stored (the worker calls it as each attempt
    ends). Never raises: this is a view of the result, which is stored already.

    The topic gets it when the task can report progress (it takes the context): a progress
    page watches such tasks. Every finished task tells :func:`await_result`'s group, one
    message, so that a busy worker of tasks nobody watches pays little."""
    try:
        if takes_context:
            await _publish(backend, _data(record))
        if record.finished:
            await backend.layer().group_send(
                done_group(record.id), {"type": DONE_TYPE, "status": record.status}
            )
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
    worker tells the wait when it has stored the outcome. Returns the refreshed
    ``TaskResult``; ``TimeoutError`` after ``timeout`` seconds."""
    backend = result.task.get_backend()
    layer = backend.layer()
    channel = await layer.new_channel("taskwait.")
    group = done_group(result.id)
    await layer.group_add(group, channel)
    try:
        async with asyncio.timeout(timeout):
            while True:
                # Also catches an end that came before we joined the group.
                fresh = await backend.aget_result(result.id)
                if fresh.is_finished:
                    return fresh
                await layer.receive(channel)
    finally:
        await layer.group_discard(group, channel)
