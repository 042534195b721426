"""Worker: one application instance per channel, messages in order, clean shutdown."""

from __future__ import annotations

import asyncio
import logging

import pytest

from switchboard.layers.inmemory import InMemoryChannelLayer
from switchboard.worker import Worker


async def _wait_for(predicate, timeout: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


class Recorder:
    """A raw ASGI application recording (scope, message) pairs and instance starts."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.seen: list[tuple[str, dict]] = []
        self.starts: list[str] = []
        self.fail_on = fail_on

    async def __call__(self, scope, receive, send) -> None:
        assert scope["type"] == "channel"
        self.starts.append(scope["channel"])
        while True:
            message = await receive()
            if message["type"] == self.fail_on:
                raise RuntimeError("boom")
            await asyncio.sleep(0)  # Give other work a chance to interleave.
            self.seen.append((scope["channel"], message))


@pytest.fixture
async def layer():
    layer = InMemoryChannelLayer()
    yield layer
    await layer.close()


async def _run(worker: Worker) -> asyncio.Task:
    task = asyncio.ensure_future(worker.run())
    await asyncio.sleep(0)
    return task


async def _stop(worker: Worker, task: asyncio.Task) -> None:
    worker.stop()
    await asyncio.wait_for(task, 5)


async def test_messages_processed_in_order_by_one_instance_per_channel(layer):
    app = Recorder()
    worker = Worker(app, ["tasks.a", "tasks.b"], layer)
    task = await _run(worker)
    for n in range(100):
        await layer.send("tasks.a", {"type": "job", "n": n})
        await layer.send("tasks.b", {"type": "job", "n": n})
    await _wait_for(lambda: len(app.seen) == 200)
    await _stop(worker, task)
    assert [m["n"] for c, m in app.seen if c == "tasks.a"] == list(range(100))
    assert [m["n"] for c, m in app.seen if c == "tasks.b"] == list(range(100))
    assert sorted(app.starts) == ["tasks.a", "tasks.b"]


async def test_messages_sent_before_start_are_processed(layer):
    for n in range(5):
        await layer.send("early", {"type": "job", "n": n})
    app = Recorder()
    worker = Worker(app, ["early"], layer)
    task = await _run(worker)
    await _wait_for(lambda: len(app.seen) == 5)
    await _stop(worker, task)
    assert [m["n"] for _, m in app.seen] == [0, 1, 2, 3, 4]


async def test_crashing_instance_is_replaced_and_later_messages_still_processed(layer, caplog):
    app = Recorder(fail_on="poison")
    worker = Worker(app, ["jobs"], layer)
    task = await _run(worker)
    with caplog.at_level(logging.ERROR, logger="switchboard.worker"):
        await layer.send("jobs", {"type": "job", "n": 1})
        await layer.send("jobs", {"type": "poison"})
        await layer.send("jobs", {"type": "job", "n": 2})
        await _wait_for(lambda: len(app.seen) == 2)
    await _stop(worker, task)
    assert [m["n"] for _, m in app.seen] == [1, 2]
    assert len(app.starts) == 2
    assert "Application for channel 'jobs' raised" in caplog.text


async def test_shutdown_lets_held_messages_finish(layer):
    done: list[int] = []

    async def slow(scope, receive, send):
        while True:
            message = await receive()
            await asyncio.sleep(0.02)
            done.append(message["n"])

    worker = Worker(slow, ["slow"], layer, queue_size=4)
    task = await _run(worker)
    for n in range(3):
        await layer.send("slow", {"type": "job", "n": n})
    await asyncio.sleep(0.005)
    await _stop(worker, task)
    assert done == [0, 1, 2]
    assert worker.instances == {}


async def test_worker_stops_taking_messages_after_stop(layer):
    app = Recorder()
    worker = Worker(app, ["c"], layer)
    task = await _run(worker)
    await _stop(worker, task)
    await layer.send("c", {"type": "job", "n": 1})
    # The message stays in the layer for the next worker.
    assert await asyncio.wait_for(layer.receive("c"), 1) == {"type": "job", "n": 1}


async def test_slow_application_leaves_messages_in_the_layer(layer):
    release = asyncio.Event()

    async def stuck(scope, receive, send):
        await receive()
        await release.wait()
        while True:
            await receive()

    worker = Worker(stuck, ["busy"], layer, queue_size=2)
    task = await _run(worker)
    for n in range(10):
        await layer.send("busy", {"type": "job", "n": n})
    await asyncio.sleep(0.05)
    # 1 being handled, 2 queued in the worker, 1 held by the blocked listener: rest in layer.
    assert len(layer.channels["busy"].messages) == 6
    release.set()
    await _wait_for(lambda: not layer.channels["busy"].messages)
    await _stop(worker, task)


async def test_application_cannot_send(layer):
    errors: list[str] = []

    async def sender(scope, receive, send):
        await receive()
        try:
            await send({"type": "anything"})
        except RuntimeError as exc:
            errors.append(str(exc))

    worker = Worker(sender, ["s"], layer)
    task = await _run(worker)
    await layer.send("s", {"type": "job"})
    await _wait_for(lambda: errors)
    await _stop(worker, task)
    assert "channel layer" in errors[0]


def test_bad_arguments(layer):
    with pytest.raises(ValueError):
        Worker(Recorder(), [], layer)
    with pytest.raises(TypeError):
        Worker(Recorder(), ["bad name"], layer)
    with pytest.raises(ValueError):
        Worker(Recorder(), ["ok"], None)
