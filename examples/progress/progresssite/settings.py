"""Settings for the task progress example: no database, tasks kept by the channel layer.

Environment overrides: PROGRESS_IPC_PATH (the IPC layer, in that runtime directory: several
processes on this machine), PROGRESS_REDIS_URL (the Redis layer: several machines),
DJANGO_DEBUG ("0" turns debug off), DJANGO_SECRET_KEY.
"""

import importlib.util
import os

# A development-only key; set DJANGO_SECRET_KEY for anything public.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "progress-example-insecure-development-key")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") != "0"
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]

# "switchboard" before "django.contrib.staticfiles": its runserver (HTTP and WebSocket, static
# files in DEBUG) replaces staticfiles' WSGI one.
INSTALLED_APPS = ["switchboard", "django.contrib.staticfiles", "reports"]
if importlib.util.find_spec("django.tasks") is None:  # Django 5.2: the Tasks API backport
    INSTALLED_APPS.append("django_tasks")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "progresssite.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.csrf"]},
    },
]
ASGI_APPLICATION = "progresssite.asgi.application"

# Nothing here needs a database: tasks and their results live in the channel layer.
DATABASES: dict[str, dict[str, str]] = {}

# Tasks are kept by CHANNEL_LAYERS["default"]. With no CHANNEL_LAYERS (the embedded in-memory
# layer) they run inside the server process; with IPC or Redis, `manage.py runworker --tasks`
# runs them, in as many processes as you like.
TASKS = {"default": {"BACKEND": "switchboard.tasks.ChannelLayerBackend"}}
if os.environ.get("PROGRESS_REDIS_URL"):
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "switchboard.layers.redis.RedisChannelLayer",
            "CONFIG": {"hosts": [os.environ["PROGRESS_REDIS_URL"]]},
        }
    }
elif os.environ.get("PROGRESS_IPC_PATH"):
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "switchboard.layers.ipc.IPCChannelLayer",
            "CONFIG": {"path": os.environ["PROGRESS_IPC_PATH"]},
        }
    }

USE_TZ = True
STATIC_URL = "static/"
