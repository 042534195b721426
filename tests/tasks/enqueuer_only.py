"""A task the test process can import and its workers cannot (as when web servers run newer
code than the workers): the workers' environment sets SB_TASKS_WORKER."""

import os

from switchboard.tasks.api import SOURCE

if os.environ.get("SB_TASKS_WORKER"):
    raise ImportError("this module is not deployed to the workers")

if SOURCE == "django.tasks":
    from django.tasks import task
else:
    from django_tasks import task


@task
def only_here():
    return "never runs"
