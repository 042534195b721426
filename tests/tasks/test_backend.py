"""The backend on the in-memory layer, where tasks run in the process that enqueues them:
Django's Tasks API end to end, through Django's API only (no private calls)."""

from __future__ import annotations

import datetime
import io

import pytest
from django.core import checks
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from switchboard.tasks import TaskTimeout, task_options
from switchboard.tasks.api import (
    InvalidTask,
    TaskResultDoesNotExist,
    TaskResultStatus,
    task_backends,
    task_enqueued,
    task_finished,
    task_started,
)
from tests.sites.tasks_site import jobs
from tests.tasks.conftest import afinished, finished

pytestmark = pytest.mark.timeout(60)

INMEMORY = {"default": {"BACKEND": "switchboard.layers.inmemory.InMemoryChannelLayer"}}


def _tasks(**options):
    return {
        "default": {
            "BACKEND": "switchboard.tasks.ChannelLayerBackend",
            "QUEUES": ["default", "mail"],
            "OPTIONS": options,
        }
    }


@pytest.fixture(autouse=True)
def _site(tmp_path, monkeypatch):
    monkeypatch.setenv("TASKS_RUN_DIR", str(tmp_path))
    with override_settings(CHANNEL_LAYERS=INMEMORY, TASKS=_tasks()):
        yield


def test_a_task_runs_in_process_and_its_result_reads_back():
    result = jobs.add.enqueue(2, 3)
    assert result.status == TaskResultStatus.READY
    assert result.enqueued_at is not None and result.enqueued_at.tzinfo is not None
    done = finished(result)
    assert done.status == TaskResultStatus.SUCCESSFUL
    assert done.return_value == 5
    assert done.attempts == 1 and len(done.worker_ids) == 1
    assert done.enqueued_at <= done.started_at <= done.finished_at
    again = jobs.add.get_result(result.id)
    assert (again.id, again.return_value, again.args) == (result.id, 5, [2, 3])
    assert task_backends["default"].get_result(result.id).status == TaskResultStatus.SUCCESSFUL


async def test_async_task_and_async_api():
    result = await jobs.aadd.aenqueue(20, 22)
    done = await afinished(result)
    assert done.return_value == 42
    fetched = await jobs.aadd.aget_result(result.id)
    assert fetched.status == TaskResultStatus.SUCCESSFUL


def test_arguments_that_are_not_json_are_refused_at_enqueue_with_djangos_error():
    with pytest.raises(TypeError, match="Unsupported type"):
        jobs.add.enqueue(object(), 1)


def test_djangos_own_validation_applies():
    with pytest.raises(InvalidTask):
        jobs.add.using(queue_name="nowhere").enqueue(1, 2)
    with pytest.raises(InvalidTask):
        jobs.add.using(run_after=datetime.datetime(2030, 1, 1)).enqueue(1, 2)  # naive


def test_an_unknown_result_id_does_not_exist():
    with pytest.raises(TaskResultDoesNotExist):
        jobs.add.get_result("no-such-result")


def test_a_task_that_raises_is_failed_with_its_error_kept():
    done = finished(jobs.explode.enqueue("boom"))
    assert done.status == TaskResultStatus.FAILED
    assert [e.exception_class_path for e in done.errors] == ["builtins.ValueError"]
    assert "boom" in done.errors[0].traceback
    assert done.errors[0].exception_class is ValueError
    with pytest.raises(ValueError, match="Task failed"):
        _ = done.return_value


def test_retries_with_backoff_until_it_succeeds():
    done = finished(jobs.flaky.enqueue("flaky", 2))
    assert done.status == TaskResultStatus.SUCCESSFUL
    assert done.return_value == "recovered"
    assert done.attempts == 3
    assert [e.exception_class_path for e in done.errors] == ["builtins.ConnectionError"] * 2


def test_attempts_run_out():
    done = finished(jobs.flaky.enqueue("hopeless", 5))
    assert done.status == TaskResultStatus.FAILED
    assert done.attempts == 3 and len(done.errors) == 3


def test_a_task_can_ask_to_be_retried():
    done = finished(jobs.asks_retry.enqueue("again"))
    assert done.status == TaskResultStatus.SUCCESSFUL
    assert done.return_value == "second time"
    assert [e.exception_class_path for e in done.errors] == ["switchboard.tasks.errors.Retry"]


@pytest.mark.parametrize("job", [jobs.forever, jobs.aforever], ids=["sync", "async"])
def test_a_task_past_its_timeout_fails(job):
    done = finished(job.enqueue("late"), timeout=10)
    assert done.status == TaskResultStatus.FAILED
    assert done.errors[-1].exception_class is TaskTimeout


def test_a_return_value_that_is_not_json_fails_the_task():
    done = finished(jobs.bad_return.enqueue())
    assert done.status == TaskResultStatus.FAILED
    assert done.errors[0].exception_class_path == "builtins.TypeError"


def test_priority_and_run_after():
    later = timezone.now() + datetime.timedelta(seconds=1)
    delayed = jobs.record.using(run_after=later).enqueue("delayed")
    urgent = jobs.record.using(priority=10, queue_name="mail").enqueue("urgent")
    assert finished(urgent).status == TaskResultStatus.SUCCESSFUL
    done = finished(delayed)
    assert done.started_at >= later
    assert done.started_at - later < datetime.timedelta(seconds=1.5)


def test_context_and_progress_reports():
    done = finished(jobs.with_progress.enqueue(3))
    assert done.status == TaskResultStatus.SUCCESSFUL
    assert done.return_value == 1  # context.attempt


def test_djangos_signals_are_sent():
    seen = []

    def note(signal):
        return lambda sender, task_result, **kw: seen.append((signal, task_result.status))

    pairs = [
        (task_enqueued, note("enqueued")),
        (task_started, note("started")),
        (task_finished, note("finished")),
    ]
    for signal, receiver in pairs:
        signal.connect(receiver, weak=False)
    try:
        finished(jobs.add.enqueue(1, 1))
    finally:
        for signal, receiver in pairs:
            signal.disconnect(receiver)
    assert [s for s, _ in seen] == ["enqueued", "started", "finished"]
    assert seen[-1][1] == TaskResultStatus.SUCCESSFUL


def _messages(**options):
    with override_settings(TASKS=_tasks(**options)):
        return [m for m in task_backends["default"].check() if m.id.startswith("switchboard")]


def test_checks_report_bad_options_with_a_fix():
    (message,) = _messages(max_attempt=3)
    assert message.level == checks.ERROR and message.id == "switchboard.E030"
    assert "unknown option 'max_attempt'" in message.msg and "'max_attempts'" in message.msg
    (message,) = _messages(retry_backoff=-1)
    assert "retry_backoff must be 0 or more" in message.msg
    (message,) = _messages(layer="elsewhere")
    assert message.id == "switchboard.E031" and "'elsewhere'" in message.msg
    (message,) = _messages(result_ttl=5)
    assert message.level == checks.WARNING and message.id == "switchboard.W030"
    assert _messages() == []


def test_deploy_check_warns_about_a_single_process_layer():
    with override_settings(TASKS=_tasks()):
        found = [m.id for m in task_backends["default"].check(deploy=True)]
    assert "switchboard.W032" in found


def test_task_options_are_checked_when_written():
    with pytest.raises(TypeError, match="max_tries"):
        task_options(max_tries=3)
    with pytest.raises(ValueError, match="max_attempts"):
        task_options(max_attempts=0)


def test_runworker_tasks_refuses_a_layer_that_never_leaves_the_process():
    with pytest.raises(CommandError, match="never reach this worker.*IPC layer"):
        call_command("runworker", "--tasks", skip_checks=True)


def test_runworker_tasks_refuses_unknown_queues_and_backends(tmp_path):
    ipc = {
        "default": {
            "BACKEND": "switchboard.layers.ipc.IPCChannelLayer",
            "CONFIG": {"path": str(tmp_path)},
        }
    }
    with override_settings(CHANNEL_LAYERS=ipc):
        with pytest.raises(
            CommandError, match=r"nowhere are not in TASKS\['default'\]\['QUEUES'\]"
        ):
            call_command("runworker", "--tasks", "nowhere", skip_checks=True)
        with pytest.raises(CommandError, match="--concurrency must be at least 1"):
            call_command("runworker", "--tasks", "--concurrency", "0", skip_checks=True)
        with pytest.raises(CommandError, match="TASKS\\['other'\\]"):
            call_command("runworker", "--tasks", "--tasks-backend", "other", skip_checks=True)


def test_the_tasks_command_counts_lists_shows_and_refuses_to_retry_what_did_not_fail():
    later = timezone.now() + datetime.timedelta(hours=1)
    scheduled = jobs.add.using(run_after=later, queue_name="mail").enqueue(1, 2)
    failed = finished(jobs.explode.enqueue("listed"))

    def run(*args):
        out = io.StringIO()
        call_command("tasks", *args, stdout=out)
        return out.getvalue()

    counts = run()
    assert "queue" in counts and "scheduled" in counts
    mail = next(line for line in counts.splitlines() if line.startswith("mail"))
    assert mail.split()[1:] == ["0", "1", "0", "0"]
    assert scheduled.id in run("list", "--scheduled")
    assert failed.id in run("list", "--failed") and "builtins.ValueError" in run("list", "--failed")
    shown = run("show", failed.id)
    assert "status:       FAILED" in shown and "listed" in shown
    with pytest.raises(CommandError, match="Not FAILED"):
        call_command("tasks", "retry", scheduled.id)
    with pytest.raises(CommandError, match="No task 'nope'"):
        call_command("tasks", "show", "nope")
