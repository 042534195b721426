"""``runworker --tasks`` processes on a real redis-server (and on the IPC layer), fed by this
process through Django's API: delivery, order, retries, and the faults a queue must survive
(a worker killed mid-task, a stopped worker, Redis restarted, a task that never returns, an
unknown task)."""

from __future__ import annotations

import datetime
import signal
import sqlite3
import time

import pytest
from django.utils import timezone

from switchboard.tasks import TaskNotFound, TaskTimeout, WorkerLost
from switchboard.tasks.api import TaskResultStatus
from tests.sites.tasks_site import jobs
from tests.support.gateway_processes import ipc_layers, redis_layers
from tests.support.redis_servers import RedisServer
from tests.support.task_processes import TaskSite
from tests.tasks.conftest import finished

pytestmark = pytest.mark.timeout(120)

# A short lease, so a killed worker's task comes back within seconds.
FAST = {"lease": 3, "retry_backoff": 0.1}


@pytest.fixture
def redis(tmp_path):
    server = RedisServer(name="tasks", aof=True)
    yield server
    server.cleanup()


@pytest.fixture
def site(tmp_path, redis):
    site = TaskSite(tmp_path, redis_layers(redis.url), FAST)
    with site.settings():
        yield site
    site.close()


def test_a_worker_runs_tasks_and_results_read_back_from_this_process(site):
    site.worker("--concurrency", "4")
    results = [jobs.add.enqueue(i, i) for i in range(20)]
    aresult = jobs.aadd.enqueue(1, 2)
    assert [finished(r).return_value for r in results] == [2 * i for i in range(20)]
    assert finished(aresult).return_value == 3
    assert {r.worker_ids[0].split("-")[-2] for r in results} == {str(site.procs[0].pid)}


def test_priority_then_fifo_within_a_queue(site):
    site.worker("--concurrency", "1", wait=False)  # tasks queue up while it starts
    low = [jobs.record.using(priority=-5).enqueue(f"order-{i}-low") for i in range(3)]
    high = [jobs.record.using(priority=50).enqueue(f"order-{i}-high") for i in range(3)]
    done = [finished(r) for r in low + high]
    order = sorted(done, key=lambda r: r.started_at)
    assert [r.args[0] for r in order] == [r.args[0] for r in high + low]


def test_run_after_is_honoured_within_a_second_across_a_worker_restart(site):
    worker = site.worker()
    soon = timezone.now() + datetime.timedelta(seconds=2)
    result = jobs.record.using(run_after=soon).enqueue("scheduled")
    worker.stop()
    time.sleep(0.5)
    site.worker()
    done = finished(result)
    assert soon <= done.started_at < soon + datetime.timedelta(seconds=1)


def test_several_workers_share_the_queues(site):
    for _ in range(2):
        site.worker("--concurrency", "2")
    results = [jobs.sleepy.enqueue(f"share-{i}", 0.2) for i in range(8)]
    pids = {finished(r).return_value and r.worker_ids[0].split("-")[-2] for r in results}
    assert pids == {str(p.pid) for p in site.procs}


def test_a_worker_killed_mid_task_has_it_run_again_once_elsewhere(site):
    first = site.worker()
    result = jobs.sleepy.enqueue("killed", 1.0)
    site.wait_runs("killed", 1)
    first.signal(signal.SIGKILL)
    first.wait()
    second = site.worker()
    done = finished(result, timeout=30)
    assert done.status == TaskResultStatus.SUCCESSFUL
    starts = [pid for event, pid in site.runs("killed") if event == "start"]
    assert starts == [first.pid, second.pid]  # once more, not twice
    assert [e.exception_class for e in done.errors] == [WorkerLost]
    assert done.attempts == 2


def test_sigterm_finishes_running_tasks_within_the_grace_period(site):
    worker = site.worker("--shutdown-timeout", "5")
    result = jobs.sleepy.enqueue("graceful", 1.0)
    site.wait_runs("graceful", 1)
    worker.stop()
    assert finished(result).status == TaskResultStatus.SUCCESSFUL
    assert "Worker stopped" in worker.output()


def test_sigterm_hands_back_what_outlives_the_grace_period(site):
    worker = site.worker("--shutdown-timeout", "0.5")
    result = jobs.sleepy.enqueue("handed-back", 2.0)
    site.wait_runs("handed-back", 1)
    t0 = time.monotonic()
    worker.stop()
    assert time.monotonic() - t0 < 5
    assert "back to the queue" in worker.output()
    result.refresh()
    assert result.status == TaskResultStatus.READY
    site.worker()
    assert finished(result).status == TaskResultStatus.SUCCESSFUL
    assert len(site.runs("handed-back")) >= 3  # two starts, one end


def test_redis_restarted_with_tasks_queued_and_scheduled_loses_none(site, redis):
    later = timezone.now() + datetime.timedelta(seconds=3)
    queued = [jobs.add.enqueue(i, 1) for i in range(10)]
    scheduled = [jobs.add.using(run_after=later).enqueue(i, 2) for i in range(5)]
    worker = site.worker()
    redis.restart()  # the AOF brings back what was written
    assert [finished(r, timeout=30).return_value for r in queued] == [i + 1 for i in range(10)]
    assert [finished(r, timeout=30).return_value for r in scheduled] == [i + 2 for i in range(5)]
    # and the worker went on through the restart
    assert finished(jobs.add.enqueue(1, 1)).return_value == 2
    assert worker.popen.poll() is None


def test_a_task_that_never_returns_fails_at_its_timeout_and_the_worker_goes_on(site):
    site.worker("--concurrency", "2")
    done = finished(jobs.forever.enqueue("stuck"))
    assert done.status == TaskResultStatus.FAILED
    assert done.errors[-1].exception_class is TaskTimeout
    assert finished(jobs.add.enqueue(2, 2)).return_value == 4


def test_an_unknown_task_fails_with_a_clear_error_and_the_worker_goes_on(site):
    from tests.tasks import enqueuer_only

    worker = site.worker()
    done = finished(enqueuer_only.only_here.enqueue())
    assert done.status == TaskResultStatus.FAILED
    assert done.errors[0].exception_class is TaskNotFound
    assert "cannot import task 'tests.tasks.enqueuer_only.only_here'" in done.errors[0].traceback
    assert finished(jobs.add.enqueue(3, 3)).return_value == 6
    assert worker.popen.poll() is None


def test_a_failed_task_is_retried_from_the_command_line(site):
    site.worker()
    done = finished(jobs.explode.enqueue("once"))
    assert done.status == TaskResultStatus.FAILED
    listing = site.manage("tasks", "list", "--failed")
    assert done.id in listing and "tests.sites.tasks_site.jobs.explode" in listing
    site.manage("tasks", "retry", done.id)
    time.sleep(0.2)
    again = finished(jobs.explode.get_result(done.id))
    assert again.status == TaskResultStatus.FAILED and len(again.errors) == 2


def test_ipc_layer_runs_tasks_and_survives_a_killed_worker(tmp_path):
    site = TaskSite(tmp_path, ipc_layers(tmp_path / "ipc"), FAST)
    try:
        with site.settings():
            first = site.worker()
            assert finished(jobs.add.enqueue(1, 2)).return_value == 3
            result = jobs.sleepy.enqueue("ipc-killed", 1.0)
            site.wait_runs("ipc-killed", 1)
            first.signal(signal.SIGKILL)
            first.wait()
            site.worker()
            assert finished(result, timeout=30).status == TaskResultStatus.SUCCESSFUL
            assert len([e for e, _ in site.runs("ipc-killed") if e == "start"]) == 2
    finally:
        site.close()


def test_sync_tasks_use_the_orm_with_djangos_connection_handling(site):
    site.manage("migrate", "--noinput", "-v0")
    site.worker("--concurrency", "3")
    results = [jobs.create_user.enqueue(f"user{i}") for i in range(6)]
    pks = sorted(finished(r).return_value for r in results)
    with sqlite3.connect(site.env["TASKS_DATABASE"]) as db:
        rows = db.execute("SELECT id, username FROM auth_user ORDER BY id").fetchall()
    assert [pk for pk, _ in rows] == pks
    assert sorted(name for _, name in rows) == [f"user{i}" for i in range(6)]
