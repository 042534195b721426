"""Settings for bench/binding.py's site: a tiny model, SQLite (BENCH_BINDING_DB), and the
in-memory layer or Redis (BENCH_REDIS_URL)."""

import os

SECRET_KEY = "bench-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "bench.binding_site"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("BENCH_BINDING_DB", "/tmp/switchboard-bench-binding.sqlite3"),
        # What is measured is the notification path, not the disk's fsync.
        "OPTIONS": {"init_command": "PRAGMA synchronous=OFF; PRAGMA journal_mode=WAL;"},
    }
}
# Group sends to a full channel are dropped (as in Channels): room for a whole round's burst,
# so what is measured is throughput, not loss.
CAPACITY = 5000
if os.environ.get("BENCH_REDIS_URL"):
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "switchboard.layers.redis.RedisChannelLayer",
            "CONFIG": {"hosts": [os.environ["BENCH_REDIS_URL"]], "capacity": CAPACITY},
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "switchboard.layers.inmemory.InMemoryChannelLayer",
            "CONFIG": {"capacity": CAPACITY},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
