"""Settings for the chat example: SQLite next to this project, the embedded default layer.

Environment overrides: CHAT_DATABASE (SQLite file path), CHAT_REDIS_URL (use the Redis layer),
DJANGO_DEBUG ("0" turns debug off), DJANGO_SECRET_KEY.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# A development-only key; set DJANGO_SECRET_KEY for anything public.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "chat-example-insecure-development-key")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") != "0"
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]

# "switchboard" comes before "django.contrib.staticfiles" so that its runserver command (HTTP and
# WebSocket on Switchboard's server, static files in DEBUG) replaces staticfiles' WSGI one.
INSTALLED_APPS = [
    "switchboard",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "chatsite.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Served by `python manage.py runserver` in development, and by
# `python -m switchboard serve chatsite.asgi:application` otherwise (see scripts/demo).
ASGI_APPLICATION = "chatsite.asgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("CHAT_DATABASE", str(BASE_DIR / "db.sqlite3")),
    }
}

# No CHANNEL_LAYERS: Switchboard's embedded default, the in-memory layer for one process and the
# IPC layer when `serve --workers N` runs several (they then share rooms, history and presence).
# Set CHAT_REDIS_URL (redis://host:port/0) to share them between machines through Redis.
if os.environ.get("CHAT_REDIS_URL"):
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "switchboard.layers.redis.RedisChannelLayer",
            "CONFIG": {"hosts": [os.environ["CHAT_REDIS_URL"]]},
        }
    }

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
