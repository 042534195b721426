"""Background tasks: a backend for Django's Tasks API on Switchboard's channel layers.

``TASKS = {"default": {"BACKEND": "switchboard.tasks.ChannelLayerBackend"}}`` keeps tasks in
the task store of ``CHANNEL_LAYERS["default"]`` (``OPTIONS``: see
:class:`~switchboard.tasks.options.BackendSettings`); ``manage.py runworker --tasks`` runs them.
Tasks are written with Django's own API (``django.tasks`` from Django 6.0, the ``django-tasks``
backport before); this package adds what that API leaves to backends:

* :func:`task_options`: a task's own retry and timeout policy;
* :class:`Retry`: raised by a task to be run again later;
* :func:`report_progress` / :func:`areport_progress`: live progress for browsers
  (:mod:`switchboard.tasks.progress`), and :func:`await_result` to wait for a result without
  polling.

The module layout: ``api`` (Django's API, either spelling), ``options``, ``records`` (results
to store records), ``backend``, ``worker`` and ``execution`` (running them), ``progress``.
"""

from __future__ import annotations

from switchboard.tasks.backend import ChannelLayerBackend
from switchboard.tasks.errors import Retry, TaskNotFound, TaskTimeout, WorkerLost
from switchboard.tasks.options import task_options
from switchboard.tasks.progress import (
    areport_progress,
    await_result,
    progress_topic,
    report_progress,
)

__all__ = [
    "ChannelLayerBackend",
    "Retry",
    "TaskNotFound",
    "TaskTimeout",
    "WorkerLost",
    "areport_progress",
    "await_result",
    "progress_topic",
    "report_progress",
    "task_options",
]
