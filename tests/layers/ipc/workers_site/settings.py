"""A project with no CHANNEL_LAYERS setting at all: the embedded default decides."""

SECRET_KEY = "tests-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["switchboard"]
ASGI_APPLICATION = "tests.layers.ipc.workers_site.asgi.application"
USE_TZ = True
