"""The task code bench/tasks.py runs on Celery, RQ and Dramatiq (and Switchboard's, in
bench/tasks_project): one no-op task per system, all with the same body, :func:`record`.

The body writes one Redis command to the system's own redis-server (``BENCH_TASKS_REDIS_URL``):
in the throughput phase the time the task ran (RPUSH to :data:`DONE`), so the bench counts
completions with LLEN and takes the first and last completion times from the list; in the
latency phase the delay between its enqueue (``sent``, a ``time.time()`` taken right before the
enqueue call) and its start (RPUSH to :data:`LATENCY`).
"""

from __future__ import annotations

import os
import time

import redis

URL_ENV = "BENCH_TASKS_REDIS_URL"
DONE = "bench:tasks:done"
LATENCY = "bench:tasks:latency"

_client: redis.Redis | None = None


def client() -> redis.Redis:
    """This process's client (redis-py's pool is thread-safe and reconnects after a fork)."""
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ[URL_ENV])
    return _client


def record(sent: float | None = None) -> None:
    """The no-op task's whole body: one RPUSH saying when it ran, or how late it started."""
    now = time.time()
    if sent is None:
        client().rpush(DONE, now)
    else:
        client().rpush(LATENCY, now - sent)
