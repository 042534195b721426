"""The no-op task Switchboard runs in bench/tasks.py: the same body as the peers' tasks
(bench/tasks_peers/__init__.py), enqueued with Django's Tasks API."""

import importlib.util

from bench.tasks_peers import record

if importlib.util.find_spec("django.tasks") is not None:  # Django 6
    from django.tasks import task
else:
    from django_tasks import task


@task
def noop(sent: float | None = None) -> None:
    record(sent)
