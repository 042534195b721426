"""A Channels 1 project, written as the Channels 1.1 documentation teaches, with ``channels``
replaced by ``switchboard``: served by ``switchboard serve c1site.asgi:channel_layer`` plus
``manage.py runworker`` processes, or by ``manage.py runserver`` alone.

C1_CHANNEL_LAYERS: CHANNEL_LAYERS as JSON (the tests point it at their own redis-server or an
IPC directory); each entry gets this project's ROUTING. Without it: the in-memory layer, which
only ``runserver`` can use. C1_DATABASE: the SQLite file every process shares.
"""

import json
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent

SECRET_KEY = "classic-site-insecure-test-key"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "switchboard",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "chat",
    "liveblog",
    "bindings",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "c1site.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
            ]
        },
    }
]
LOGIN_REDIRECT_URL = "/"

CHANNEL_LAYERS = json.loads(
    os.environ.get(
        "C1_CHANNEL_LAYERS",
        '{"default": {"BACKEND": "switchboard.layers.inmemory.InMemoryChannelLayer"}}',
    )
)
for _layer in CHANNEL_LAYERS.values():
    _layer.setdefault("ROUTING", "c1site.routing.channel_routing")

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("C1_DATABASE", ":memory:"),
        # Several workers write channel sessions at once: wait for SQLite's lock.
        "OPTIONS": {"timeout": 20},
    }
}
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {
        "switchboard": {"handlers": ["stderr"], "level": os.environ.get("C1_LOG_LEVEL", "INFO")}
    },
}
