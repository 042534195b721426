"""Tasks the task tests enqueue (with Django's API) and their workers run.

Runs are counted in files under TASKS_RUN_DIR (one line per start, with the pid), so a test
sees how many times and where a task ran, across processes.
"""

import asyncio
import os
import threading
import time

from switchboard.tasks import Retry, areport_progress, report_progress, task_options
from switchboard.tasks.api import SOURCE

if SOURCE == "django.tasks":
    from django.tasks import task
else:
    from django_tasks import task


def _note(tag: str, event: str) -> int:
    """Appends ``event pid`` to the tag's run file; returns how many starts it holds now."""
    path = os.path.join(os.environ["TASKS_RUN_DIR"], tag)
    with open(path, "a") as f:
        f.write(f"{event} {os.getpid()}\n")
    with open(path) as f:
        return sum(1 for line in f if line.startswith("start"))


@task
def add(a, b):
    return a + b


@task
async def aadd(a, b):
    await asyncio.sleep(0)
    return a + b


@task
def noop():
    return None


@task
def record(tag):
    _note(tag, "start")
    return os.getpid()


@task
def sleepy(tag, seconds):
    _note(tag, "start")
    time.sleep(seconds)
    _note(tag, "end")
    return "slept"


@task
def explode(message):
    raise ValueError(message)


@task
@task_options(max_attempts=3, retry_backoff=0.1, retry_jitter=False)
def flaky(tag, failures):
    if _note(tag, "start") <= failures:
        raise ConnectionError(f"failure {failures}")
    return "recovered"


@task
@task_options(max_attempts=2)
def asks_retry(tag):
    if _note(tag, "start") == 1:
        raise Retry("not yet", delay=0.2)
    return "second time"


@task
@task_options(timeout=0.5)
def forever(tag):
    _note(tag, "start")
    time.sleep(3600)


@task
@task_options(timeout=0.5)
async def aforever(tag):
    _note(tag, "start")
    await asyncio.sleep(3600)


@task
def bad_return():
    return object()


@task(takes_context=True)
def with_progress(context, steps):
    for step in range(1, steps + 1):
        report_progress(context, step / steps, f"step {step} of {steps}")
    return context.attempt


# Gates that tests/tasks/test_progress.py opens once it watches a task (in-process workers).
GATES: dict[str, threading.Event] = {}


@task(takes_context=True)
def gated_progress(context, gate, steps):
    """``with_progress`` once ``GATES[gate]`` is set."""
    if not GATES[gate].wait(20):
        raise TimeoutError(f"gate {gate} never opened")
    for step in range(1, steps + 1):
        report_progress(context, step / steps, f"step {step} of {steps}")
    return f"{steps} steps"


@task(takes_context=True)
def progress_to(context, fractions):
    for fraction in fractions:
        report_progress(context, fraction, f"at {fraction}")
    return len(fractions)


@task(takes_context=True)
async def aprogress_to(context, fractions):
    for fraction in fractions:
        await areport_progress(context, fraction, f"at {fraction}")
    return len(fractions)


@task
def create_user(username):
    from django.contrib.auth.models import User

    return User.objects.create(username=username).pk
