"""Live progress of tasks (switchboard.tasks.progress): what a browser watching ``task.<id>``
receives over a real WebSocket, ``await_result``, and what ``report_progress`` accepts.

Tasks are enqueued through Django's API and run in this process on the in-memory layer (the
embedded worker, on the test's loop); the WebSocket server is Switchboard's own, on the same
loop, so it shares the layer. ``await_result`` is also checked across processes: the IPC layer
and a ``runworker --tasks`` subprocess.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone
from websockets.asyncio.client import ClientConnection, connect

from switchboard.realtime import RealtimeConsumer
from switchboard.routing import ProtocolTypeRouter
from switchboard.tasks import await_result, progress_topic
from switchboard.tasks.api import TaskResultStatus
from tests.sites.tasks_site import jobs
from tests.support.gateway_processes import ipc_layers
from tests.support.serving import serving
from tests.support.task_processes import TaskSite
from tests.tasks.conftest import afinished

pytestmark = pytest.mark.timeout(60)

INMEMORY = {"default": {"BACKEND": "switchboard.layers.inmemory.InMemoryChannelLayer"}}
TASKS = {"default": {"BACKEND": "switchboard.tasks.ChannelLayerBackend"}}
_gate_names = itertools.count()


class TaskWatcher(RealtimeConsumer):
    """A page's socket, as an application would write it: it may watch task topics."""

    async def topic_allowed(self, topic: str, action: str) -> bool:
        return action == "subscribe" and topic.startswith("task.")


APPLICATION = ProtocolTypeRouter({"websocket": TaskWatcher.as_asgi()})


@pytest.fixture(autouse=True)
def _site(tmp_path, monkeypatch):
    monkeypatch.setenv("TASKS_RUN_DIR", str(tmp_path))
    with override_settings(CHANNEL_LAYERS=INMEMORY, TASKS=TASKS):
        yield


@pytest.fixture
def gate() -> Iterator[str]:
    """A closed gate for ``jobs.gated_progress``, by name; opened at the end in any case, so no
    task thread is left waiting on it."""
    name = f"gate-{next(_gate_names)}"
    jobs.GATES[name] = event = threading.Event()
    yield name
    event.set()
    del jobs.GATES[name]


@asynccontextmanager
async def _watcher(address: str) -> AsyncIterator[ClientConnection]:
    async with connect(f"ws://{address}/", open_timeout=10) as ws:
        yield ws


async def _frame(ws: ClientConnection) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), 10))


async def _subscribe(ws: ClientConnection, topic: str, **options: Any) -> dict[str, Any]:
    await ws.send(json.dumps({"sb": "sub", "topic": topic, **options}))
    subscribed = await _frame(ws)
    assert subscribed["sb"] == "subscribed" and subscribed["topic"] == topic, subscribed
    return subscribed


# -- what a watcher receives ------------------------------------------------------------------


async def test_a_watcher_gets_each_report_in_order_then_the_result(gate):
    result = await jobs.gated_progress.aenqueue(gate, 4)
    topic = progress_topic(result.id)
    assert topic == f"task.{result.id}"
    async with serving(APPLICATION) as address, _watcher(address) as ws:
        subscribed = await _subscribe(ws, topic)
        jobs.GATES[gate].set()
        pubs = [await _frame(ws)]
        while pubs[-1].get("data", {}).get("status") == "RUNNING":
            pubs.append(await _frame(ws))

        running = [
            {"id": result.id, "status": "RUNNING", "fraction": n / 4, "message": f"step {n} of 4"}
            for n in range(1, 5)
        ]
        end = {
            "id": result.id,
            "status": "SUCCESSFUL",
            "fraction": 1.0,
            "message": "step 4 of 4",  # the last report's, kept with the result
            "return_value": "4 steps",
        }
        assert [p["data"] for p in pubs] == [*running, end]
        assert [p["offset"] for p in pubs] == [subscribed["offset"] + n for n in range(1, 6)]
        assert {(p["sb"], p["topic"]) for p in pubs} == {("pub", topic)}

        # Subscribing after the end, with history: the last state, and only that.
        async with _watcher(address) as late:
            await _subscribe(late, topic, history=5)
            replay = await _frame(late)
            assert (replay["sb"], replay["offset"], replay["data"]) == (
                "pub",
                pubs[-1]["offset"],
                end,
            )
            # The socket answers frames in order: this refusal coming next proves no other
            # publication was replayed before it.
            await late.send(json.dumps({"sb": "sub", "topic": "elsewhere"}))
            refused = {"sb": "error", "error": "subscribe refused", "topic": "elsewhere"}
            assert await _frame(late) == refused

    done = await jobs.gated_progress.aget_result(result.id)
    assert (done.status, done.return_value) == (TaskResultStatus.SUCCESSFUL, "4 steps")


# -- await_result -----------------------------------------------------------------------------


async def test_await_result_wakes_when_the_task_finishes(gate):
    result = await jobs.gated_progress.aenqueue(gate, 2)
    waiting = asyncio.ensure_future(await_result(result, timeout=20))
    done, _ = await asyncio.wait({waiting}, timeout=0.2)
    assert not done, "await_result returned while the task could not have finished"
    jobs.GATES[gate].set()
    finished = await asyncio.wait_for(waiting, 10)
    assert finished.id == result.id
    assert (finished.status, finished.return_value) == (TaskResultStatus.SUCCESSFUL, "2 steps")
    assert finished.finished_at is not None


async def test_await_result_returns_a_failed_result_too():
    result = await jobs.explode.aenqueue("on purpose")
    failed = await await_result(result, timeout=20)
    assert failed.status == TaskResultStatus.FAILED
    assert failed.errors[-1].exception_class is ValueError


async def test_await_result_returns_at_once_for_a_task_already_finished():
    stale = await jobs.add.aenqueue(2, 3)
    await afinished(await jobs.add.aget_result(stale.id))
    assert stale.status == TaskResultStatus.READY  # as enqueue returned it
    # Its last publication is long gone: a wait for one would run into the timeout.
    done = await await_result(stale, timeout=2)
    assert (done.id, done.status, done.return_value) == (stale.id, TaskResultStatus.SUCCESSFUL, 5)


async def test_await_result_raises_timeout_error_after_its_timeout(gate):
    result = await jobs.gated_progress.aenqueue(gate, 1)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await await_result(result, timeout=0.3)
    assert 0.3 <= time.monotonic() - started < 3
    # Giving up changed nothing for the task, nor for a later wait.
    jobs.GATES[gate].set()
    done = await await_result(result, timeout=20)
    assert done.status == TaskResultStatus.SUCCESSFUL


async def test_await_result_is_woken_by_a_worker_in_another_process(tmp_path):
    site = TaskSite(tmp_path, ipc_layers(tmp_path / "ipc"))
    try:
        with site.settings():
            worker = site.worker("--concurrency", "1")
            result = await jobs.sleepy.aenqueue("awaited", 0.5)
            called_at = timezone.now()
            done = await await_result(result, timeout=20)
            assert done.status == TaskResultStatus.SUCCESSFUL, done.errors
            assert done.finished_at > called_at  # it did wait for the end
            assert site.runs("awaited") == [("start", worker.pid), ("end", worker.pid)]
    finally:
        site.close()


# -- report_progress's fraction -----------------------------------------------------------


@pytest.mark.parametrize("job", [jobs.progress_to, jobs.aprogress_to], ids=["sync", "async"])
async def test_a_fraction_from_0_to_1_or_none_is_accepted(job):
    result = await job.aenqueue([0, 0.5, None, 1])
    done = await afinished(result)
    assert (done.status, done.return_value) == (TaskResultStatus.SUCCESSFUL, 4), done.errors


@pytest.mark.parametrize("fraction", [-0.01, 1.01, 50])
@pytest.mark.parametrize("job", [jobs.progress_to, jobs.aprogress_to], ids=["sync", "async"])
async def test_a_fraction_outside_0_to_1_raises_value_error(job, fraction):
    done = await afinished(await job.aenqueue([0.5, fraction]))
    assert done.status == TaskResultStatus.FAILED
    assert done.errors[-1].exception_class is ValueError
    assert "fraction must be between 0 and 1" in done.errors[-1].traceback
