"""Settings of the end-to-end Django site: a stock project layout, SQLite in a temp directory."""

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

try:
    # Required rather than defaulted: the server and the bootstrap must agree on one database.
    SITE_DIR = Path(os.environ["DJANGO_SITE_DIR"])
except KeyError:
    raise ImproperlyConfigured("Set DJANGO_SITE_DIR to a writable temporary directory") from None

DOWNLOAD_FILE = SITE_DIR / "download.bin"

SECRET_KEY = "switchboard-django-site-not-secret"
DEBUG = False  # Error pages as in production: a crash must show up as a plain 500.
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
ROOT_URLCONF = "tests.sites.django_site.urls"
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
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
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [Path(__file__).resolve().parent / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    }
]
DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": SITE_DIR / "db.sqlite3"},
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
STATIC_URL = "static/"
# Fast hashing keeps the admin login quick; nothing here protects real passwords.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Tracebacks of failed requests go to stderr, i.e. into the server's log file, where a failing
# test can show them (Django only prints them to the console when DEBUG is on).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"handlers": ["stderr"], "level": "ERROR"}},
}
