"""One settings file for both stacks (bench/channels1.py runs it on each).

Written for Python 3.6 and Django 1.11 as well as for Django 5: the original stack imports it
too. Whichever of ``switchboard`` and ``channels`` imports is the app installed; the layer's
BACKEND is Channels 1's ``asgi_redis`` path on both (Switchboard builds its own Redis layer
from it). The environment says where Redis, the database and the probes' log are.
"""

import os

try:
    import switchboard  # noqa: F401

    FRAMEWORK = "switchboard"
except ImportError:
    FRAMEWORK = "channels"

SECRET_KEY = "bench-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["django.contrib.sessions", FRAMEWORK, "c1chat"]
ROOT_URLCONF = "c1site.urls"
MIDDLEWARE = []
USE_TZ = True

# Channel sessions live where a small Channels 1 project kept them: Django's default engine,
# the database (SQLite here). C1_SESSION_ENGINE picks another (e.g. ...backends.file).
SESSION_ENGINE = os.environ.get("C1_SESSION_ENGINE", "django.contrib.sessions.backends.db")
SESSION_FILE_PATH = os.environ.get("C1_SESSION_DIR") or None
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("C1_DATABASE", "/tmp/c1chat.sqlite3"),
        # Django's default 0: a new connection per consumer, as per request.
        "CONN_MAX_AGE": int(os.environ.get("C1_CONN_MAX_AGE", "0")),
    }
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "asgi_redis.RedisChannelLayer",
        "CONFIG": {"hosts": [os.environ.get("C1_REDIS_URL", "redis://127.0.0.1:6379/0")]},
        "ROUTING": "c1chat.routing.channel_routing",
    }
}
# Switchboard's note that asgi_redis is an old name for its layer: known here, on purpose.
SILENCED_SYSTEM_CHECKS = ["switchboard.W003"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("C1_LOG_LEVEL", "WARNING")},
}
