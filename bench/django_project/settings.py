import os
from pathlib import Path

SECRET_KEY = "bench-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "bench.django_project.urls"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
]
# startproject's middleware list, minus admin-only pieces.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [Path(__file__).resolve().parent / "templates"],
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("BENCH_DJANGO_DB", "/tmp/switchboard-bench-django.sqlite3"),
        "CONN_MAX_AGE": 60,
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
CHANNEL_LAYERS = {"default": {"BACKEND": "switchboard.layers.InMemoryChannelLayer"}}
LOGGING = {"version": 1, "disable_existing_loggers": False}
# bench/django_http.py's "sb-stock" server: Django's own ASGI handler on Switchboard.
SWITCHBOARD_NATIVE_HTTP = os.environ.get("SWITCHBOARD_NATIVE_HTTP", "1") != "0"
# bench/django_http.py --env SWITCHBOARD_HTTP_CONCURRENCY=0: the pool without the loop's gate.
if "SWITCHBOARD_HTTP_CONCURRENCY" in os.environ:
    SWITCHBOARD_HTTP_CONCURRENCY = int(os.environ["SWITCHBOARD_HTTP_CONCURRENCY"])
