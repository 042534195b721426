"""Django settings for the test suite (file-backed SQLite so worker threads share one DB)."""

import importlib.util
import os
import tempfile

SECRET_KEY = "switchboard-tests-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver", "allowed.example.com"]
USE_TZ = True
ROOT_URLCONF = "tests.sites.default.urls"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "switchboard",
    "tests.sites.binding_app",  # a model for the data binding tests
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.path.join(tempfile.mkdtemp(prefix="switchboard-tests-"), "db.sqlite3"),
    }
}
SESSION_ENGINE = "django.contrib.sessions.backends.db"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CHANNEL_LAYERS = {"default": {"BACKEND": "switchboard.layers.inmemory.InMemoryChannelLayer"}}
# Background tasks on the in-memory layer: run in this process (tests/tasks).
TASKS = {"default": {"BACKEND": "switchboard.tasks.ChannelLayerBackend"}}
if importlib.util.find_spec("django.tasks") is None:  # Django 5.2: the backport
    INSTALLED_APPS.append("django_tasks")
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
