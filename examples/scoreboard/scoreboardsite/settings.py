"""Settings for the scoreboard example: SQLite next to this project, htmx from its CDN.

Environment overrides: SCOREBOARD_DATABASE (SQLite file path), SCOREBOARD_IPC_PATH (the IPC
layer, in that runtime directory: the server and `manage.py score` on one machine),
SCOREBOARD_REDIS_URL (the Redis layer: several machines), SCOREBOARD_HTMX_DIR (serve htmx from
this directory instead of the CDN), DJANGO_DEBUG ("0" turns debug off), DJANGO_SECRET_KEY.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# A development-only key; set DJANGO_SECRET_KEY for anything public. It also signs the stream
# tokens in the pages: whoever knows it can subscribe to any stream.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "scoreboard-example-insecure-development-key")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") != "0"
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]

INSTALLED_APPS = [
    "switchboard",  # before staticfiles: its runserver serves HTTP, WebSockets and SSE
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "games",
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

ROOT_URLCONF = "scoreboardsite.urls"

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
                "games.context_processors.htmx",
            ],
        },
    },
]

ASGI_APPLICATION = "scoreboardsite.asgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SCOREBOARD_DATABASE", str(BASE_DIR / "db.sqlite3")),
    }
}

# No CHANNEL_LAYERS: the embedded default, an in-memory layer (or, under `serve --workers N`,
# one the workers share), so the staff form reaches every page. `manage.py score` is another
# process: its publications reach the server's pages only on a layer both use, IPC on one
# machine (SCOREBOARD_IPC_PATH) or Redis across machines (SCOREBOARD_REDIS_URL), set the same
# for every process.
if os.environ.get("SCOREBOARD_REDIS_URL"):
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "switchboard.layers.redis.RedisChannelLayer",
            "CONFIG": {"hosts": [os.environ["SCOREBOARD_REDIS_URL"]]},
        }
    }
elif os.environ.get("SCOREBOARD_IPC_PATH"):
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "switchboard.layers.ipc.IPCChannelLayer",
            "CONFIG": {"path": os.environ["SCOREBOARD_IPC_PATH"]},
        }
    }

# htmx and its two extensions, pinned, from the CDN the htmx documentation uses, each with
# its Subresource Integrity hash (the browser refuses a file that differs). The hashes are
# the SHA-384 of the files in the npm packages of these versions (`npm pack`).
HTMX_CDN = "https://cdn.jsdelivr.net/npm"
HTMX_SCRIPTS = {
    "htmx": {
        "src": f"{HTMX_CDN}/htmx.org@2.0.11/dist/htmx.min.js",
        "integrity": "sha384-2OatzQy1H+Zd/IIrjr1TcuDGqLXeHhbooAyJY1KdQMKnr4LZ22k31GBLdYKHmVjg",
    },
    "sse": {
        "src": f"{HTMX_CDN}/htmx-ext-sse@2.2.4/dist/sse.min.js",
        "integrity": "sha384-A986SAtodyH8eg8x8irJnYUk7i9inVQqYigD6qZ9evobksGNIXfeFvDwLSHcp31N",
    },
    "ws": {
        "src": f"{HTMX_CDN}/htmx-ext-ws@2.0.4/dist/ws.min.js",
        "integrity": "sha384-1RwI/nvUSrMRuNj7hX1+27J8XDdCoSLf0EjEyF69nacuWyiJYoQ/j39RT1mSnd2G",
    },
}
# Self-hosting (or offline): a directory holding htmx.min.js, sse.min.js and ws.min.js of the
# same versions, served by this site under /htmx/ (scoreboardsite/urls.py). The hashes stay:
# a different file is still refused.
HTMX_DIR = os.environ.get("SCOREBOARD_HTMX_DIR")
if HTMX_DIR:
    for script in HTMX_SCRIPTS.values():
        script["src"] = "/htmx/" + script["src"].rsplit("/", 1)[-1]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGIN_URL = "/admin/login/"
