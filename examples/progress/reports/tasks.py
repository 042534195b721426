"""The background task: a pretend report built in steps, telling watchers how far it got."""

import time

from switchboard.tasks import report_progress

try:
    from django.tasks import task  # Django 6.0 and later
except ImportError:
    from django_tasks import task  # the backport, on Django 5.2

STEP_SECONDS = 0.2  # stands in for the real work of one step


@task(takes_context=True)
def build_report(context, steps: int) -> dict[str, int]:
    for step in range(1, steps + 1):
        # Published at once on the task's topic, "task.<result id>", for the page to show.
        report_progress(context, (step - 1) / steps, f"Step {step} of {steps}")
        time.sleep(STEP_SECONDS)
    # The worker publishes the end itself: SUCCESSFUL with this return value, or FAILED.
    return {"sections": steps, "words": 250 * steps}
