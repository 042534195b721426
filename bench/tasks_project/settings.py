"""Switchboard's side of bench/tasks.py: Django's Tasks API on ``switchboard.tasks``, with the
tasks kept in the Redis channel layer on the bench's redis-server (``BENCH_TASKS_REDIS_URL``)."""

import importlib.util
import os

SECRET_KEY = "bench-not-secret"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = ["switchboard"]
if importlib.util.find_spec("django.tasks") is None:  # Django < 6: the django-tasks backport
    INSTALLED_APPS.append("django_tasks")
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "switchboard.layers.redis.RedisChannelLayer",
        "CONFIG": {"hosts": [os.environ.get("BENCH_TASKS_REDIS_URL", "redis://127.0.0.1:6379")]},
    }
}
TASKS = {
    "default": {
        "BACKEND": "switchboard.tasks.ChannelLayerBackend",
        "OPTIONS": {"layer": "default"},
    }
}
LOGGING = {"version": 1, "disable_existing_loggers": False}
# A task worker only: no ASGI application, so no WebSockets to warn about.
SILENCED_SYSTEM_CHECKS = ["switchboard.W002"]
