"""tests.settings, but with the in-memory SQLite database Django's test runner defaults to."""

from tests.settings import *  # noqa: F403

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
ASGI_APPLICATION = "tests.live_app.application"
ROOT_URLCONF = "tests.live_urls"
