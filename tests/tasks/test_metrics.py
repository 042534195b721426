"""Background tasks' metrics (``switchboard_tasks_*``): scraped over HTTP from a real
``runworker --tasks --metrics-port`` on a real redis-server after it ran tasks this process
enqueued with Django's API; the Django view of a web process; and the collector on a TaskStats
made here."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import pytest
from django.test import RequestFactory
from prometheus_client import CollectorRegistry, generate_latest

from switchboard.metrics.django import metrics_view
from switchboard.metrics.tasks import TaskCollector
from switchboard.tasks.api import TaskResultStatus
from switchboard.tasks.stats import TaskStats
from tests.sites.tasks_site import jobs
from tests.support import metrics_scrape
from tests.support.example_server import free_port
from tests.support.gateway_processes import redis_layers
from tests.support.metrics_scrape import Samples, parse, scrape
from tests.support.redis_servers import RedisServer
from tests.support.task_processes import REPO, TaskSite
from tests.tasks.conftest import finished

pytestmark = pytest.mark.timeout(60)


def scrape_until(port: int, check: Callable[[Samples], bool]) -> Samples:
    return metrics_scrape.scrape_until(port, check, prefix="switchboard_tasks")


def get(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def per_task(samples: Samples, name: str) -> dict[str, float]:
    return {dict(labels)["task"]: v for (n, labels), v in samples.items() if n == name}


@pytest.fixture
def site(tmp_path) -> Iterator[TaskSite]:
    with RedisServer(name="task-metrics") as redis:
        site = TaskSite(tmp_path, redis_layers(redis.url), {"lease": 3})
        try:
            with site.settings():
                yield site
        finally:
            site.close()


def test_a_worker_counts_what_its_tasks_did_by_task_name(site: TaskSite) -> None:
    port = free_port()
    site.worker("--concurrency", "4", "--metrics-port", str(port))
    results = [jobs.add.enqueue(i, 1) for i in range(3)]
    results.append(jobs.explode.enqueue("boom"))
    results.append(jobs.flaky.enqueue("metrics-flaky", 1))  # fails once, then succeeds
    results.append(jobs.asks_retry.enqueue("metrics-retry"))  # Retry once, then succeeds
    statuses = [finished(result).status for result in results]
    assert statuses.count(TaskResultStatus.FAILED) == 1

    started = {"add": 3, "explode": 1, "flaky": 2, "asks_retry": 2}
    succeeded = {"add": 3, "flaky": 1, "asks_retry": 1}
    # A result is stored before the worker counts it: wait for the counts to catch up.
    samples = scrape_until(
        port, lambda s: per_task(s, "switchboard_tasks_succeeded_total") == succeeded
    )
    assert per_task(samples, "switchboard_tasks_started_total") == started
    assert per_task(samples, "switchboard_tasks_failed_total") == {"explode": 1}
    assert per_task(samples, "switchboard_tasks_retried_total") == {"flaky": 1, "asks_retry": 1}
    # One observation per attempt, each in a bucket: none lost, none counted twice.
    assert per_task(samples, "switchboard_tasks_run_seconds_count") == started
    for name, attempts in started.items():
        assert get(samples, "switchboard_tasks_run_seconds_bucket", task=name, le="+Inf") == (
            attempts
        )
        assert 0 < (get(samples, "switchboard_tasks_run_seconds_sum", task=name) or 0) < 5
    assert get(samples, "switchboard_tasks_running") == 0
    again = scrape(port)
    assert per_task(again, "switchboard_tasks_run_seconds_count") == started


def test_queue_depth_and_running_while_the_worker_is_busy(site: TaskSite) -> None:
    # Queued before the worker starts: its first claim takes one (all its concurrency) and
    # it reads the depths right after, so two are left waiting in "mail".
    for i in range(3):
        jobs.sleepy.using(queue_name="mail").enqueue(f"busy-{i}", 3.0)
    port = free_port()
    worker = site.worker(
        "--concurrency", "1", "--shutdown-timeout", "0.2", "--metrics-port", str(port)
    )
    samples = scrape_until(
        port, lambda s: get(s, "switchboard_tasks_queue_depth", queue="mail") == 2
    )
    assert get(samples, "switchboard_tasks_queue_depth", queue="default") == 0
    assert get(samples, "switchboard_tasks_queue_depth", queue="reports") == 0
    assert get(samples, "switchboard_tasks_running") == 1
    assert len(site.runs("busy-0") + site.runs("busy-1") + site.runs("busy-2")) == 1
    worker.stop()  # the running one goes back to the queue (--shutdown-timeout 0.2)


def test_the_django_view_shows_a_web_process_enqueued_tasks(site: TaskSite) -> None:
    def enqueued() -> dict[str, float]:
        response = metrics_view(RequestFactory().get("/metrics/"))
        return per_task(parse(response.content.decode()), "switchboard_tasks_enqueued_total")

    before = enqueued().get("noop", 0)
    jobs.noop.enqueue()
    jobs.noop.using(queue_name="reports").enqueue()  # no worker: they stay queued
    assert enqueued().get("noop", 0) == before + 2


# The view of a process that never used tasks, then of one that did (a fresh interpreter:
# this one has imported switchboard.tasks long ago).
VIEW_SCRIPT = """
import sys
import tests.server.metrics_site as site
from django.test import RequestFactory

def families():
    text = site.metrics_view(RequestFactory().get("/metrics/")).content.decode()
    types = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
    return sorted(name for name in types if name.startswith("switchboard_tasks"))

print("imported" if "switchboard.tasks.stats" in sys.modules else "not imported", families())
from switchboard.tasks.stats import stats
stats.count("enqueued", "send_mail")
print(families())
"""


def test_the_django_view_reads_task_stats_only_once_the_process_has_them() -> None:
    done = subprocess.run(
        [sys.executable, "-c", VIEW_SCRIPT],
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    before, after = done.stdout.splitlines()
    assert before == "not imported []"
    assert "switchboard_tasks_enqueued" in after and "switchboard_tasks_run_seconds" in after
    assert "switchboard_tasks_running" not in after  # no worker in a web process


def collected(registry: CollectorRegistry) -> Samples:
    return parse(generate_latest(registry).decode())


def test_the_collector_reads_and_drains_a_task_stats() -> None:
    stats = TaskStats()
    for event, name in [("enqueued", "a"), ("enqueued", "a"), ("enqueued", "b")]:
        stats.count(event, name)
    stats.count("started", "a")
    stats.count("failed", "a")
    stats.count("retried", "b")
    stats.ran("a", 0.004)
    stats.ran("a", 0.7)
    stats.ran("b", 1200.0)  # above the last bound: +Inf only
    stats.queue_depths.update({"default": 4, "mail": 0})
    worker = SimpleNamespace(stats=stats, queues=["default", "mail"], running={"t1": 1, "t2": 2})
    registry = CollectorRegistry(auto_describe=False)
    # The same stats twice (two task workers share a process's): read once.
    registry.register(TaskCollector(lambda: [stats, stats], [worker]))

    samples = collected(registry)
    assert per_task(samples, "switchboard_tasks_enqueued_total") == {"a": 2, "b": 1}
    assert per_task(samples, "switchboard_tasks_started_total") == {"a": 1}
    assert per_task(samples, "switchboard_tasks_succeeded_total") == {}
    assert per_task(samples, "switchboard_tasks_failed_total") == {"a": 1}
    assert per_task(samples, "switchboard_tasks_retried_total") == {"b": 1}
    assert get(samples, "switchboard_tasks_queue_depth", queue="default") == 4
    assert get(samples, "switchboard_tasks_queue_depth", queue="mail") == 0
    assert get(samples, "switchboard_tasks_running") == 2
    bucket = "switchboard_tasks_run_seconds_bucket"
    assert get(samples, bucket, task="a", le="0.005") == 1
    assert get(samples, bucket, task="a", le="0.5") == 1
    assert get(samples, bucket, task="a", le="1.0") == 2
    assert get(samples, bucket, task="b", le="600.0") == 0
    assert get(samples, bucket, task="b", le="+Inf") == 1
    assert get(samples, "switchboard_tasks_run_seconds_sum", task="a") == pytest.approx(0.704)
    assert stats.run_times == []  # drained into the buckets

    stats.ran("b", 0.02)  # appended after a scrape: counted by the next, once
    stats.count("enqueued", "b")
    worker.running.clear()
    for _ in range(2):
        samples = collected(registry)
        assert get(samples, "switchboard_tasks_run_seconds_count", task="a") == 2
        assert get(samples, "switchboard_tasks_run_seconds_count", task="b") == 2
        assert get(samples, bucket, task="b", le="0.025") == 1
        assert per_task(samples, "switchboard_tasks_enqueued_total") == {"a": 2, "b": 2}
        assert get(samples, "switchboard_tasks_running") == 0


def test_the_collector_is_silent_without_stats_and_running_needs_workers() -> None:
    silent = CollectorRegistry(auto_describe=False)
    silent.register(TaskCollector(lambda: []))
    assert not collected(silent)

    stats = TaskStats()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TaskCollector(lambda: [stats]))
    names = {name for name, _ in collected(registry)}
    assert "switchboard_tasks_running" not in names
    stats.count("succeeded", "x")
    assert get(collected(registry), "switchboard_tasks_succeeded_total", task="x") == 1
