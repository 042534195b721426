"""Django's Tasks API, wherever this Django keeps it: ``django.tasks`` from Django 6.0, the
``django-tasks`` backport (``pip install switchboard[tasks]``) before.

The rest of :mod:`switchboard.tasks` imports the API from here only, so one module knows that
there are two spellings (the backport names two exceptions differently).
"""

from __future__ import annotations

import importlib
from typing import Any

from django.core.exceptions import ImproperlyConfigured

__all__ = [
    "BaseTaskBackend",
    "InvalidTask",
    "Task",
    "TaskContext",
    "TaskError",
    "TaskResult",
    "TaskResultDoesNotExist",
    "TaskResultStatus",
    "normalize_json",
    "task_enqueued",
    "task_finished",
    "task_backends",
    "task_started",
]


def _spellings() -> tuple[str, dict[str, tuple[str, str]]]:
    """The package that holds the API here, and where each name lives in it."""
    names = {
        "BaseTaskBackend": ("backends.base", "BaseTaskBackend"),
        "InvalidTask": ("exceptions", "InvalidTask"),
        "Task": ("base", "Task"),
        "TaskContext": ("base", "TaskContext"),
        "TaskError": ("base", "TaskError"),
        "TaskResult": ("base", "TaskResult"),
        "TaskResultDoesNotExist": ("exceptions", "TaskResultDoesNotExist"),
        "TaskResultStatus": ("base", "TaskResultStatus"),
        "task_backends": ("", "task_backends"),
        "task_enqueued": ("signals", "task_enqueued"),
        "task_finished": ("signals", "task_finished"),
        "task_started": ("signals", "task_started"),
    }
    try:
        importlib.import_module("django.tasks")
    except ImportError:
        pass
    else:
        return "django.tasks", names
    try:
        importlib.import_module("django_tasks")
    except ImportError as exc:
        raise ImproperlyConfigured(
            "switchboard.tasks needs Django's Tasks API: Django 6.0 or later has it as "
            "django.tasks; on an older Django install the backport with "
            "`pip install switchboard[tasks]` (the django-tasks package) and add "
            '"django_tasks" to INSTALLED_APPS'
        ) from exc
    # The backport's names for two exceptions, and its own JSON normaliser.
    names["InvalidTask"] = ("exceptions", "InvalidTaskError")
    return "django_tasks", names


def _load(package: str, where: tuple[str, str]) -> Any:
    module, name = where
    return getattr(importlib.import_module(f"{package}.{module}" if module else package), name)


SOURCE, _names = _spellings()
BaseTaskBackend: Any = _load(SOURCE, _names["BaseTaskBackend"])
InvalidTask: Any = _load(SOURCE, _names["InvalidTask"])
Task: Any = _load(SOURCE, _names["Task"])
TaskContext: Any = _load(SOURCE, _names["TaskContext"])
TaskError: Any = _load(SOURCE, _names["TaskError"])
TaskResult: Any = _load(SOURCE, _names["TaskResult"])
TaskResultDoesNotExist: Any = _load(SOURCE, _names["TaskResultDoesNotExist"])
TaskResultStatus: Any = _load(SOURCE, _names["TaskResultStatus"])
task_backends: Any = _load(SOURCE, _names["task_backends"])
task_enqueued: Any = _load(SOURCE, _names["task_enqueued"])
task_finished: Any = _load(SOURCE, _names["task_finished"])
task_started: Any = _load(SOURCE, _names["task_started"])
normalize_json: Any = _load(
    "django.utils" if SOURCE == "django.tasks" else SOURCE,
    ("json", "normalize_json") if SOURCE == "django.tasks" else ("utils", "normalize_json"),
)
