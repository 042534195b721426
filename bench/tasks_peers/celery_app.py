"""Celery 5 on the Redis broker, for bench/tasks.py: ``celery -A bench.tasks_peers.celery_app``.

No result backend and results ignored (the no-op returns nothing anyone reads); JSON messages.
"""

from __future__ import annotations

import os

from celery import Celery

from bench.tasks_peers import URL_ENV, record

QUEUE = "bench"

app = Celery("bench_tasks", broker=os.environ[URL_ENV])
app.conf.update(
    task_default_queue=QUEUE,
    task_ignore_result=True,
    task_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    worker_redirect_stdouts=False,
)


@app.task(name="bench.noop")
def noop(sent: float | None = None) -> None:
    record(sent)
