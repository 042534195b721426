"""The suite's settings, with the in-memory SQLite database Django's test runner defaults to."""

from tests.sites.default.settings import *  # noqa: F403

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
ASGI_APPLICATION = "tests.sites.live.app.application"
ROOT_URLCONF = "tests.sites.live.urls"
