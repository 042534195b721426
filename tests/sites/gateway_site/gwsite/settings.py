"""A small project served in gateway mode by the tests: the layer comes from the environment.

GATEWAY_CHANNEL_LAYERS: CHANNEL_LAYERS as JSON (the tests point it at their own redis-server
or an IPC directory). GATEWAY_DATABASE: the SQLite file gateway and workers share.
"""

import json
import os

SECRET_KEY = "gateway-site-insecure-test-key"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "switchboard",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "gwsite.urls"
ASGI_APPLICATION = "gwsite.asgi.application"
CHANNEL_LAYERS = json.loads(
    os.environ.get(
        "GATEWAY_CHANNEL_LAYERS",
        '{"default": {"BACKEND": "switchboard.layers.inmemory.InMemoryChannelLayer"}}',
    )
)
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("GATEWAY_DATABASE", ":memory:"),
    }
}
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"switchboard": {"handlers": ["stderr"], "level": "INFO"}},
}
