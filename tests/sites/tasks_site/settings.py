"""The project the task tests run workers of (``python -m django runworker --tasks`` with
``--settings tests.sites.tasks_site.settings``); the test process enqueues with the same
CHANNEL_LAYERS and TASKS (``tests/support/task_processes.py``).

TASKS_CHANNEL_LAYERS: CHANNEL_LAYERS as JSON. TASKS_OPTIONS: the backend's OPTIONS as JSON.
TASKS_QUEUES: the backend's QUEUES, comma-separated (empty: any queue).
"""

import importlib.util
import json
import os
import tempfile

SECRET_KEY = "tasks-site-insecure-test-key"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "switchboard",
]
if importlib.util.find_spec("django.tasks") is None:  # Django 5.2: the backport
    INSTALLED_APPS.append("django_tasks")
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get(
            "TASKS_DATABASE", os.path.join(tempfile.gettempdir(), "sb-tasks-site.sqlite3")
        ),
    }
}
CHANNEL_LAYERS = json.loads(
    os.environ.get(
        "TASKS_CHANNEL_LAYERS",
        '{"default": {"BACKEND": "switchboard.layers.inmemory.InMemoryChannelLayer"}}',
    )
)
_queues = os.environ.get("TASKS_QUEUES", "default,mail,reports")
TASKS = {
    "default": {
        "BACKEND": "switchboard.tasks.ChannelLayerBackend",
        "QUEUES": [q for q in _queues.split(",") if q],
        "OPTIONS": json.loads(os.environ.get("TASKS_OPTIONS", "{}")),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"switchboard": {"handlers": ["stderr"], "level": "INFO"}},
}
