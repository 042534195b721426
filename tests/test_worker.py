"""Worker: one application instance per channel, messages in order, clean shutdown."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from switchboard.layers.inmemory import InMemoryChannelLayer
from switchboard.worker import Worker

REPO = Path(__file__).resolve().parent.parent


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


async def test_channel_name_router_with_sync_and_async_consumers():
    from switchboard.consumer import AsyncConsumer, SyncConsumer
    from switchboard.layers import get_channel_layer
    from switchboard.routing import ChannelNameRouter

    processed: list[tuple[str, int, str]] = []

    class Thumbnailer(SyncConsumer):
        def thumbnail_make(self, message):  # Runs in a thread, like any sync Django code.
            processed.append(("sync", message["n"], self.scope["channel"]))

    class Notifier(AsyncConsumer):
        async def notify_send(self, message):
            processed.append(("async", message["n"], self.scope["channel"]))

    layer = get_channel_layer()
    application = ChannelNameRouter(
        {"thumbnails": Thumbnailer.as_asgi(), "notifications": Notifier.as_asgi()}
    )
    worker = Worker(application, ["thumbnails", "notifications"], layer)
    task = await _run(worker)
    for n in range(30):
        await layer.send("thumbnails", {"type": "thumbnail.make", "n": n})
        await layer.send("notifications", {"type": "notify.send", "n": n})
    await _wait_for(lambda: len(processed) == 60, timeout=10)
    await _stop(worker, task)
    assert [n for kind, n, _ in processed if kind == "sync"] == list(range(30))
    assert [n for kind, n, _ in processed if kind == "async"] == list(range(30))
    assert {(kind, channel) for kind, _, channel in processed} == {
        ("sync", "thumbnails"),
        ("async", "notifications"),
    }


# -- the runworker management command --------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((), "Name at least one channel to listen on, give --gateway or --tasks, or set a"),
        (("--gateway",), "--gateway needs a channel layer that spans processes"),  # in-memory
        (("bad name",), "is invalid"),
        (("jobs", "--layer", "missing"), "No channel layer named 'missing'"),
    ],
)
def test_runworker_argument_errors(args, error):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match=error):
        call_command("runworker", *args)


_WORKER_SETTINGS = """
import os
SECRET_KEY = "worker-test"
INSTALLED_APPS = ["switchboard"]
USE_TZ = True
ASGI_APPLICATION = "workerproj.app.application"
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "switchboard.layers.redis.RedisChannelLayer",
        "CONFIG": {"hosts": [os.environ["WORKER_TEST_REDIS"]]},
    }
}
"""

_WORKER_APP = """
from switchboard.layers import get_channel_layer


async def application(scope, receive, send):
    # A raw ASGI app: answers every job on its reply channel, tagged with the worker's channel.
    assert scope == {"type": "channel", "channel": scope["channel"]}
    layer = get_channel_layer()
    while True:
        job = await receive()
        await layer.send(job["reply_to"], {"type": "done", "n": job["n"], "by": scope["channel"]})
"""


async def test_runworker_subprocess_consumes_over_redis_and_exits_on_sigterm(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from switchboard.layers.redis import RedisChannelLayer
    from tests.support.redis_servers import RedisServer

    project = tmp_path / "workerproj"
    project.mkdir()
    (project / "__init__.py").write_text("")
    (project / "settings.py").write_text(_WORKER_SETTINGS)
    (project / "app.py").write_text(_WORKER_APP)
    with RedisServer(name="worker") as server:
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="workerproj.settings",
            PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]),
            WORKER_TEST_REDIS=server.url,
            PYTHONUNBUFFERED="1",
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "django", "runworker", "jobs", "jobs.urgent",
            env=env, cwd=tmp_path,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        layer = RedisChannelLayer(hosts=[server.url])
        try:
            first = await asyncio.wait_for(process.stdout.readline(), 30)
            if b"Running worker for channels jobs, jobs.urgent" not in first:
                rest = await asyncio.wait_for(process.stdout.read(), 10)
                raise AssertionError((first + rest).decode(errors="replace"))
            reply_to = await layer.new_channel()
            for n in range(20):
                channel = "jobs.urgent" if n % 5 == 0 else "jobs"
                await layer.send(channel, {"type": "job", "n": n, "reply_to": reply_to})
            replies = [await asyncio.wait_for(layer.receive(reply_to), 10) for _ in range(20)]
            by_channel = {
                name: [r["n"] for r in replies if r["by"] == name]
                for name in ("jobs", "jobs.urgent")
            }
            assert by_channel["jobs"] == [n for n in range(20) if n % 5]
            assert by_channel["jobs.urgent"] == [0, 5, 10, 15]
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), 15) == 0
            rest = await process.stdout.read()
            assert b"Worker stopped" in rest, rest
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            await layer.close()
