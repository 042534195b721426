"""Gateway mode for real: ``switchboard serve --gateway`` and ``manage.py runworker --gateway``
as subprocesses of tests/sites/gateway_site, joined by a real redis-server, driven by real
WebSocket clients. Workers are stopped (SIGTERM), killed (SIGKILL) and frozen (SIGSTOP) under
the clients' feet; the clients must see nothing but what the issue allows."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support.gateway_processes import Deployment, ipc_layers, redis_layers
from tests.support.redis_servers import RedisServer

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def deployment(tmp_path: Path, redis: RedisServer) -> Iterator[Deployment]:
    deployed = Deployment(tmp_path, redis_layers(redis.url))
    try:
        yield deployed
    finally:
        deployed.close()


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def ws_url(address: str, path: str = "/ws/echo/") -> str:
    return f"ws://{address}{path}"


async def echo(ws: ClientConnection, text: str) -> dict[str, Any]:
    await ws.send(text)
    return json.loads(await asyncio.wait_for(ws.recv(), 10))


class Stream:
    """Numbered messages on one socket every ``interval``; the echoes, as they come."""

    def __init__(self, ws: ClientConnection, interval: float = 0.01) -> None:
        self.ws = ws
        self.interval = interval
        self.sent = 0
        self.echoes: list[int] = []
        self.replies: list[dict[str, Any]] = []
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.ensure_future(self._send()), asyncio.ensure_future(self._read())]

    async def _send(self) -> None:
        while True:
            self.sent += 1
            await self.ws.send(str(self.sent))
            await asyncio.sleep(self.interval)

    async def _read(self) -> None:
        async for text in self.ws:
            reply = json.loads(text)
            self.replies.append(reply)
            self.echoes.append(int(reply["echo"]))

    async def finish(self, timeout: float = 15.0) -> None:
        """Stop sending, then wait until every message sent was echoed."""
        self._tasks[0].cancel()
        deadline = time.monotonic() + timeout
        while len(set(self.echoes)) < self.sent and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        self._tasks[1].cancel()

    def check_complete(self, duplicates_allowed: bool = False) -> None:
        missing = sorted(set(range(1, self.sent + 1)) - set(self.echoes))
        assert missing == [], f"never echoed: {missing[:20]} of {self.sent}"
        firsts = list(dict.fromkeys(self.echoes))
        assert firsts == sorted(firsts), "echoes out of order"
        if not duplicates_allowed:
            assert len(self.echoes) == self.sent, "some messages were handled twice"

    @property
    def pids(self) -> list[int]:
        return list(dict.fromkeys(reply["pid"] for reply in self.replies))


# -- starting ----------------------------------------------------------------------------------


def test_the_in_memory_layer_is_refused_at_startup(tmp_path: Path) -> None:
    layers = {"default": {"BACKEND": "switchboard.layers.inmemory.InMemoryChannelLayer"}}
    deployed = Deployment(tmp_path, layers)
    try:
        gateway, _ = deployed.gateway(wait=False)
        assert gateway.wait() == 2
        out = gateway.output()
        assert "--gateway needs a channel layer that spans processes" in out
        assert "InMemoryChannelLayer" in out and "IPCChannelLayer" in out
        assert "Listening on" not in out  # refused before binding
        worker = deployed.worker(wait=False)
        assert worker.wait() != 0
        assert "--gateway needs a channel layer that spans processes" in worker.output()
    finally:
        deployed.close()


async def test_http_is_served_by_the_gateway_and_websockets_by_a_worker(
    deployment: Deployment,
) -> None:
    gateway, address = deployment.gateway()
    worker = deployment.worker()
    gateway.wait_for("joined")
    body = await asyncio.to_thread(http_get, f"http://{address}/")
    assert f"pid {gateway.pid}" in body
    async with connect(ws_url(address)) as ws:
        assert await echo(ws, "hello") == {"echo": "hello", "pid": worker.pid, "resumed": False}
        await ws.send(b"\x00\xffbinary")
        assert await ws.recv() == b"\x00\xffbinary"


async def test_a_gateway_without_workers_warns_and_the_connection_waits_for_one(
    deployment: Deployment,
) -> None:
    gateway, address = deployment.gateway()
    gateway.wait_for("no worker is taking connections")
    async with asyncio.timeout(30):
        connecting = asyncio.ensure_future(connect(ws_url(address)))
        await asyncio.sleep(0.5)
        assert not connecting.done()  # the handshake waits for a worker...
        worker = deployment.worker()
        async with await connecting as ws:  # ... and completes once one joins
            assert (await echo(ws, "late"))["pid"] == worker.pid
    # Warned again and again while none ran (every 5 s; the first at once).
    assert gateway.output().count("no worker is taking connections") >= 1


async def test_a_connection_that_waits_too_long_for_a_worker_is_closed_with_1013(
    deployment: Deployment,
) -> None:
    _, address = deployment.gateway("--gateway-wait-timeout", "1")
    async with connect(ws_url(address)) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013


# -- scope and identity ------------------------------------------------------------------------


async def test_the_consumer_sees_the_scope_it_would_see_in_process(
    deployment: Deployment,
) -> None:
    deployment.manage("migrate", "-v0")
    key = deployment.manage(
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model, SESSION_KEY, BACKEND_SESSION_KEY, "
        "HASH_SESSION_KEY\n"
        "from django.contrib.sessions.backends.db import SessionStore\n"
        "u = get_user_model().objects.create_user('ada', password='pw')\n"
        "s = SessionStore()\n"
        "s[SESSION_KEY] = str(u.pk)\n"
        "s[BACKEND_SESSION_KEY] = 'django.contrib.auth.backends.ModelBackend'\n"
        "s[HASH_SESSION_KEY] = u.get_session_auth_hash()\n"
        "s.create()\n"
        "print(s.session_key)",
    ).splitlines()[-1]  # after Django 5.2's note on the objects it imported
    gateway, address = deployment.gateway()
    worker = deployment.worker()
    gateway.wait_for("joined")
    headers = {"Cookie": f"sessionid={key}; theme=dark", "X-Custom": "yes"}
    async with connect(ws_url(address, "/ws/scope/?room=1"), additional_headers=headers) as ws:
        scope = json.loads(await asyncio.wait_for(ws.recv(), 10))
        local = ws.local_address
    assert scope["pid"] == worker.pid
    assert scope["user"] == "ada"
    assert scope["session_key"] == key
    assert scope["cookies"] == {"sessionid": key, "theme": "dark"}
    assert scope["client"] == [local[0], local[1]]  # the browser's address, not the gateway's
    assert scope["path"] == "/ws/scope/" and scope["query_string"] == "room=1"
    assert scope["headers"]["x-custom"] == "yes"
    assert scope["resumed"] is False
    # The consumer's channel belongs to the worker's process, not the gateway's.
    assert scope["channel_name"].startswith("specific.")
    # A key that stays the same when the connection moves: the gateway's id for it.
    assert scope["connection"].startswith("switchboard.gateway.")


async def test_group_send_from_anywhere_reaches_sockets_on_every_gateway(
    deployment: Deployment,
) -> None:
    first, address_1 = deployment.gateway()
    second, address_2 = deployment.gateway()
    deployment.worker()
    deployment.worker()
    first.wait_for("joined", count=2)
    second.wait_for("joined", count=2)
    path = "/ws/chat/lobby/"
    async with connect(ws_url(address_1, path)) as ada, connect(ws_url(address_2, path)) as bob:
        await asyncio.sleep(0.3)  # both joined the room's group
        await ada.send(json.dumps({"message": "hi from gateway 1"}))
        for ws in (ada, bob):
            reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert reply == {"message": "hi from gateway 1", "user": "anonymous"}
        # From a process that is neither gateway nor worker.
        deployment.manage(
            "shell",
            "-c",
            "from asgiref.sync import async_to_sync\n"
            "from switchboard.layers import get_channel_layer\n"
            "async_to_sync(get_channel_layer().group_send)('chat_lobby', "
            "{'type': 'chat.message', 'message': 'from a script', 'user': 'cron'})",
        )
        for ws in (ada, bob):
            reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert reply == {"message": "from a script", "user": "cron"}


# -- workers leaving, dying, freezing ----------------------------------------------------------


async def test_a_worker_stopped_with_sigterm_hands_its_connections_over_losing_nothing(
    deployment: Deployment,
) -> None:
    gateway, address = deployment.gateway()
    old = deployment.worker()
    gateway.wait_for("joined")
    async with connect(ws_url(address)) as ws:
        stream = Stream(ws)
        stream.start()
        await asyncio.sleep(0.5)
        new = deployment.worker()
        gateway.wait_for("joined", count=2)
        await asyncio.sleep(0.3)
        assert old.stop() == 0
        await asyncio.sleep(0.5)
        await stream.finish()
    stream.check_complete()  # exactly once: the old consumer finished what it had read
    assert stream.pids == [old.pid, new.pid]
    assert stream.replies[0]["resumed"] is False and stream.replies[-1]["resumed"] is True
    assert "Handing 1 connection(s) back" in old.output()
    assert "is leaving" in gateway.output()
    # The access log's line for the connection names both workers that served it.
    closing = [line for line in gateway.output().splitlines() if "closed 1000 by client" in line]
    assert len(closing) == 1 and f":{old.pid}, " in closing[0], closing
    assert closing[0].endswith(f":{new.pid}]")


async def test_a_busy_consumer_finishes_its_message_before_its_worker_leaves(
    deployment: Deployment,
) -> None:
    gateway, address = deployment.gateway()
    old = deployment.worker()
    gateway.wait_for("joined")
    async with connect(ws_url(address)) as ws:
        await ws.send("sleep:1.5:slow")
        await asyncio.sleep(0.3)  # the consumer is inside its handler
        new = deployment.worker()
        gateway.wait_for("joined", count=2)
        old.signal(signal.SIGTERM)
        gateway.wait_for("is leaving")
        await ws.send("next")  # arrives while the old worker is leaving
        first = json.loads(await asyncio.wait_for(ws.recv(), 10))
        second = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert (first["echo"], first["pid"]) == ("slow", old.pid)
    assert (second["echo"], second["pid"], second["resumed"]) == ("next", new.pid, True)
    assert old.wait() == 0


async def test_a_consumer_handling_messages_concurrently_finishes_them_before_leaving(
    deployment: Deployment,
) -> None:
    gateway, address = deployment.gateway()
    old = deployment.worker()
    gateway.wait_for("joined")
    async with connect(ws_url(address, "/ws/concurrent/")) as ws:
        await ws.send("sleep:1.5:slow")
        await asyncio.sleep(0.3)  # its handler runs; the consumer waits for more meanwhile
        new = deployment.worker()
        gateway.wait_for("joined", count=2)
        old.signal(signal.SIGTERM)
        gateway.wait_for("is leaving")
        await ws.send("next")
        replies = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(2)]
    assert [(r["echo"], r["pid"]) for r in replies] == [("slow", old.pid), ("next", new.pid)]
    assert old.wait() == 0


async def test_a_killed_worker_s_connections_move_and_nothing_is_lost(
    deployment: Deployment,
) -> None:
    gateway, address = deployment.gateway()
    doomed = deployment.worker()
    gateway.wait_for("joined")
    async with connect(ws_url(address)) as ws:
        stream = Stream(ws)
        stream.start()
        await asyncio.sleep(0.5)
        survivor = deployment.worker()
        gateway.wait_for("joined", count=2)
        doomed.signal(signal.SIGKILL)
        gateway.wait_for("lost", timeout=10)
        await asyncio.sleep(0.5)
        await stream.finish()
    # At least once across a crash: what the dead consumer read but had not acknowledged
    # (at most 50 ms of messages) is handled again; nothing is lost, the order is kept.
    stream.check_complete(duplicates_allowed=True)
    assert len(stream.echoes) - stream.sent <= 32
    assert stream.pids == [doomed.pid, survivor.pid]


async def test_a_connection_waits_for_the_next_worker_when_none_is_left(
    deployment: Deployment,
) -> None:
    gateway, address = deployment.gateway()
    only = deployment.worker()
    gateway.wait_for("joined")
    async with connect(ws_url(address)) as ws:
        assert (await echo(ws, "before"))["pid"] == only.pid
        assert only.stop() == 0
        await ws.send("while nobody serves")  # kept by the gateway
        await asyncio.sleep(1.0)
        successor = deployment.worker()
        reply = json.loads(await asyncio.wait_for(ws.recv(), 15))
        assert reply == {"echo": "while nobody serves", "pid": successor.pid, "resumed": True}


async def test_a_frozen_worker_is_given_up_and_its_connection_closed_with_1013(
    deployment: Deployment,
) -> None:
    gateway, address = deployment.gateway("--gateway-wait-timeout", "2")
    frozen = deployment.worker()
    gateway.wait_for("joined")
    async with connect(ws_url(address)) as ws:
        await echo(ws, "alive")
        frozen.signal(signal.SIGSTOP)  # never answers again, never says goodbye
        try:
            await ws.send("into the void")
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 15)
        finally:
            frozen.signal(signal.SIGCONT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    out = gateway.output()
    assert "lost: not heard from" in out and "closed with 1013" in out
    # Thawed, it knows its connections were moved, and ends their stale consumers.
    frozen.wait_for("did not run for")


async def test_a_consumer_that_must_not_move_is_closed_with_1012(
    deployment: Deployment,
) -> None:
    gateway, address = deployment.gateway()
    worker = deployment.worker()
    deployment.worker()
    gateway.wait_for("joined", count=2)
    # The pinned consumer may land on either worker: stop the one that holds it.
    async with connect(ws_url(address, "/ws/pinned/")) as ws:
        holder = (await echo(ws, "x"))["pid"]
        victim = worker if holder == worker.pid else deployment.procs[-1]
        assert victim.pid == holder
        victim.signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 15)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    # It ended as it would in-process when its socket closes: its disconnect ran.
    assert victim.wait() == 0
    assert "pinned consumer disconnected with 1012" in victim.output()


# -- consumers that fail -----------------------------------------------------------------------


async def test_a_consumer_that_raises_closes_its_socket_with_1011(
    deployment: Deployment,
) -> None:
    gateway, address = deployment.gateway()
    worker = deployment.worker()
    gateway.wait_for("joined")
    async with connect(ws_url(address)) as ws:
        await ws.send("fail")
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
    worker.wait_for("ValueError: asked to fail")
    gateway.wait_for("its consumer raised on worker")
    assert worker.output().count("Traceback") == 1


async def test_a_refused_handshake_is_refused_as_in_process(deployment: Deployment) -> None:
    gateway, address = deployment.gateway()
    deployment.worker()
    gateway.wait_for("joined")
    with pytest.raises(InvalidStatus) as refused:
        async with connect(ws_url(address, "/ws/refuses/")):
            pass
    assert refused.value.response.status_code == 403


async def test_a_consumer_that_raises_on_resume_is_closed_with_1011_and_logged_once(
    deployment: Deployment,
) -> None:
    gateway, address = deployment.gateway()
    first = deployment.worker()
    gateway.wait_for("joined")
    async with connect(ws_url(address, "/ws/fails/")) as ws:
        await echo(ws, "fine")
        second = deployment.worker()
        gateway.wait_for("joined", count=2)
        first.stop()
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 15)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
    second.wait_for("RuntimeError: cannot resume this one")
    await asyncio.sleep(1.0)  # nothing retries it
    assert second.output().count("Traceback") == 1
    assert gateway.output().count("its consumer raised") == 1


# -- the layer going away ----------------------------------------------------------------------


async def test_a_redis_restart_pauses_connections_and_loses_nothing(
    deployment: Deployment, redis: RedisServer
) -> None:
    gateway, address = deployment.gateway()
    worker = deployment.worker()
    gateway.wait_for("joined")
    async with connect(ws_url(address)) as ws:
        stream = Stream(ws, interval=0.05)
        stream.start()
        await asyncio.sleep(0.5)
        redis.kill()
        await asyncio.sleep(2.0)
        redis.restart()
        await asyncio.sleep(2.0)
        await stream.finish(timeout=20)
    stream.check_complete()  # nothing twice: the same consumer served it throughout
    assert stream.pids == [worker.pid]
    assert "lost" not in gateway.output()


async def test_gateway_mode_over_the_ipc_layer(tmp_path: Path) -> None:
    deployed = Deployment(tmp_path, ipc_layers(tmp_path / "ipc"))
    try:
        gateway, address = deployed.gateway()
        first = deployed.worker()
        gateway.wait_for("joined")
        async with connect(ws_url(address)) as ws:
            stream = Stream(ws)
            stream.start()
            await asyncio.sleep(0.3)
            second = deployed.worker()
            gateway.wait_for("joined", count=2)
            assert first.stop() == 0
            await asyncio.sleep(0.3)
            await stream.finish()
        stream.check_complete()
        assert stream.pids == [first.pid, second.pid]
    finally:
        deployed.close()


async def test_sse_and_long_poll_sessions_are_relayed_to_a_worker_too(
    deployment: Deployment,
) -> None:
    """A fallback transport's session (switchboard.transports) is a WebSocket session like any
    other: in gateway mode its consumer runs in a worker, never in the gateway."""
    import httpx

    from tests.transports.clients import Poller, sse

    gateway, address = deployment.gateway()
    worker = deployment.worker()
    gateway.wait_for("joined")
    url = f"http://{address}/ws/echo/?x=1"
    async with httpx.AsyncClient(timeout=10) as client:
        async with sse(client, url) as stream:
            reply = await client.post(
                f"{url}&sb_transport=sse&sb_session={stream.token}", json={"frames": ["hi"]}
            )
            assert reply.status_code == 204, reply.text
            event = await stream.next(timeout=10)
            assert json.loads(event["data"]) == {"echo": "hi", "pid": worker.pid, "resumed": False}
        poller = Poller(client, url)
        await poller.open()
        assert (await poller.send("there")).status_code == 204
        (frame,) = await poller.frames(1)
        assert json.loads(frame) == {"echo": "there", "pid": worker.pid, "resumed": False}
