"""A Channels 1 project end to end: tests/sites/classic_site (chat rooms with channel sessions,
a live blog sending to a Group in Model.save, the data-binding example behind a
demultiplexer) served as the talks deploy it, ``switchboard serve c1site.asgi:channel_layer``
plus ``manage.py runworker`` subprocesses on a real redis-server (and once on the IPC layer),
or ``manage.py runserver`` alone, driven by real HTTP and WebSocket clients.

Most tests share one deployment (an interface server and one worker on one Redis); the ones
that need their own processes start them.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import sqlite3
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from tests.support.classic_processes import ClassicDeployment, Proc, ipc_layers, redis_layers
from tests.support.redis_servers import RedisServer

pytestmark = pytest.mark.timeout(90)

PASSWORD = "correct horse"


# -- clients -----------------------------------------------------------------------------------


def login(address: str, username: str) -> str:
    """Logs in through Django's login view (served by a worker over the layer); the session
    key."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    url = f"http://{address}/accounts/login/"
    with opener.open(url, timeout=10) as response:
        assert response.status == 200
    token = next(cookie.value for cookie in jar if cookie.name == "csrftoken")
    form = {"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token}
    request = urllib.request.Request(url, data=urllib.parse.urlencode(form).encode())
    with opener.open(request, timeout=10) as response:  # redirected to the index page
        assert response.read().decode() == f"c1site: hello {username}"
    return next(cookie.value for cookie in jar if cookie.name == "sessionid")


def http_post(url: str, fields: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=urllib.parse.urlencode(fields).encode())
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def ws_connect(address: str, path: str, session: str | None = None) -> Any:
    headers = {"Cookie": f"sessionid={session}"} if session else None
    return connect(f"ws://{address}{path}", additional_headers=headers, open_timeout=15)


async def recv_json(ws: ClientConnection, timeout: float = 15) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def nothing_arrives(ws: ClientConnection, within: float = 0.5) -> None:
    with pytest.raises(TimeoutError):
        frame = await asyncio.wait_for(ws.recv(), within)
        pytest.fail(f"unexpected frame {frame!r}")


def rows(database: Path, query: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(database) as db:
        return db.execute(query).fetchall()


async def chat(
    address: str,
    rooms: dict[str, list[str]],
    per_sender: int = 10,
    sessions: dict[str, str] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Everyone in ``rooms`` ({room: [client name]}) sends ``per_sender`` numbered lines at
    once; checks each client hears exactly its room, each sender in order. What each heard."""
    sessions = sessions or {}
    sockets: dict[str, ClientConnection] = {}
    room_of = {name: room for room, names in rooms.items() for name in names}
    try:
        for name, room in room_of.items():
            sockets[name] = await ws_connect(address, f"/chat/{room}/", sessions.get(name))

        async def say(name: str) -> None:
            for i in range(per_sender):
                await sockets[name].send(f"{name}:{i}")

        async def hear(name: str) -> list[dict[str, Any]]:
            expected = len(rooms[room_of[name]]) * per_sender
            return [await recv_json(sockets[name]) for _ in range(expected)]

        results = await asyncio.gather(
            *(hear(name) for name in sockets), *(say(name) for name in sockets)
        )
        heard = dict(zip(sockets, results[: len(sockets)], strict=True))
        await asyncio.gather(*(nothing_arrives(ws, 0.3) for ws in sockets.values()))
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets.values()))
    for name, frames in heard.items():
        room = room_of[name]
        assert {frame["room"] for frame in frames} == {room}, name
        by_sender: dict[str, list[int]] = {}
        for frame in frames:
            sender, number = frame["text"].split(":")
            by_sender.setdefault(sender, []).append(int(number))
        assert set(by_sender) == set(rooms[room]), f"{name} heard {sorted(by_sender)}"
        for sender, numbers in by_sender.items():
            assert numbers == list(range(per_sender)), f"{name} heard {sender} as {numbers}"
    return heard


def once(proc: Proc, text: str) -> None:
    assert proc.output().count(text) == 1, f"{text!r} not logged once:\n{proc.output()}"


# -- one deployment for most tests --------------------------------------------------------------


class Site:
    def __init__(self, deployment: ClassicDeployment, interface: Proc, address: str, worker: Proc):
        self.deployment = deployment
        self.interface = interface
        self.address = address
        self.worker = worker


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with RedisServer() as redis:
        deployment = ClassicDeployment(tmp_path_factory.mktemp("classic"), redis_layers(redis.url))
        try:
            deployment.migrate()
            deployment.create_users(PASSWORD, "editor", "visitor", staff=("editor",))
            interface, address = deployment.interface()
            worker = deployment.worker("--threads", "4")
            yield Site(deployment, interface, address, worker)
        finally:
            deployment.close()


async def test_chat_rooms_reach_their_members_only_in_order_per_sender(site: Site) -> None:
    editor = await asyncio.to_thread(login, site.address, "editor")
    heard = await chat(
        site.address,
        {"lobby": ["ann", "bob", "cat"], "garden": ["dan", "eve"]},
        sessions={"ann": editor},
    )
    users = {frame["text"].split(":")[0]: frame["user"] for frame in heard["bob"]}
    # channel_session_user_from_http kept ann's login for the socket's later messages.
    assert users == {"ann": "editor", "bob": "anonymous", "cat": "anonymous"}


async def test_liveblog_posts_reach_every_reader(site: Site) -> None:
    readers = [await ws_connect(site.address, "/liveblog/stream/") for _ in range(3)]
    try:
        url = f"http://{site.address}/liveblog/posts/"
        status, created = await asyncio.to_thread(http_post, url, {"title": "Kickoff"})
        assert status == 201 and created["title"] == "Kickoff"
        for reader in readers:
            assert await recv_json(reader) == created
        # Saved outside any consumer (a shell), Post.save sends at once.
        site.deployment.manage(
            "shell", "-c", "from liveblog.models import Post\nPost(title='From the shell').save()"
        )
        for reader in readers:
            assert (await recv_json(reader))["title"] == "From the shell"
        listed = json.loads(await asyncio.to_thread(http_get, url))["posts"]
        assert [post["title"] for post in listed] == ["Kickoff", "From the shell"]
    finally:
        await asyncio.gather(*(reader.close() for reader in readers))


async def test_data_binding_through_the_demultiplexer(site: Site) -> None:
    database = site.deployment.database
    editor = await asyncio.to_thread(login, site.address, "editor")
    visitor = await asyncio.to_thread(login, site.address, "visitor")
    staff = await ws_connect(site.address, "/bindings/stream/", editor)
    plain = await ws_connect(site.address, "/bindings/stream/", visitor)
    anonymous = await ws_connect(site.address, "/bindings/stream/")
    everyone = [staff, plain, anonymous]

    async def write(ws: ClientConnection, action: str, **payload: Any) -> None:
        await ws.send(json.dumps({"stream": "items", "payload": {"action": action, **payload}}))

    async def everyone_hears() -> dict[str, Any]:
        frames = [await recv_json(ws) for ws in everyone]
        assert all(frame == frames[0] for frame in frames)
        assert frames[0]["stream"] == "items"
        return frames[0]["payload"]

    try:
        await write(staff, "create", data={"name": "apple", "quantity": 3, "note": "ignored"})
        created = await everyone_hears()
        pk = created["pk"]
        assert created == {
            "action": "create",
            "pk": pk,
            "data": {"name": "apple", "quantity": 3},
            "model": "bindings.item",
        }
        await write(staff, "update", pk=pk, data={"quantity": 5})
        updated = await everyone_hears()
        assert updated["action"] == "update" and updated["data"] == {"name": "apple", "quantity": 5}

        # Refused: a user without permission, a pk that does not exist. Nothing is saved,
        # nothing is sent.
        await write(plain, "create", data={"name": "pear", "quantity": 1})
        await write(plain, "update", pk=pk, data={"quantity": 99})
        await write(anonymous, "delete", pk=pk)
        await write(staff, "update", pk=pk + 1000, data={"quantity": 7})
        await write(staff, "delete", pk=pk + 1000)
        site.worker.wait_for("ItemBinding refused", count=5)
        await asyncio.gather(*(nothing_arrives(ws) for ws in everyone))
        assert rows(database, "SELECT id, name, quantity, note FROM bindings_item") == [
            (pk, "apple", 5, "")
        ]
        forbidden, missing = (
            "{'error': 'forbidden'}",
            f"{{'error': 'not_found', 'pk': {pk + 1000}}}",
        )
        once(site.worker, f"ItemBinding refused create of pk None by visitor: {forbidden}")
        once(site.worker, f"ItemBinding refused update of pk {pk} by visitor: {forbidden}")
        once(site.worker, f"ItemBinding refused delete of pk {pk} by AnonymousUser: {forbidden}")
        once(site.worker, f"ItemBinding refused update of pk {pk + 1000} by editor: {missing}")
        once(site.worker, f"ItemBinding refused delete of pk {pk + 1000} by editor: {missing}")

        await write(staff, "delete", pk=pk)
        assert (await everyone_hears())["action"] == "delete"
        assert rows(database, "SELECT id FROM bindings_item") == []

        # Saved elsewhere (a shell), the item reaches the sockets too.
        site.deployment.manage(
            "shell", "-c", "from bindings.models import Item\nItem(name='fig').save()"
        )
        assert (await everyone_hears())["data"] == {"name": "fig", "quantity": 0}
    finally:
        await asyncio.gather(*(ws.close() for ws in everyone))


async def test_a_consumer_that_raises_is_logged_once_and_the_worker_goes_on(site: Site) -> None:
    async with ws_connect(site.address, "/faults/") as ws:
        await ws.send("raise")
        site.worker.wait_for("the faults consumer was told to raise")
        # What it sent before it raised goes out all the same (Channels 1.1 did so too).
        assert await asyncio.wait_for(ws.recv(), 15) == "sent before raising"
        await ws.send("still there?")
        assert await asyncio.wait_for(ws.recv(), 15) == f"echo still there? from {site.worker.pid}"
    log = site.worker.output()
    once(site.worker, "Error in consumer faults_receive for a message on 'websocket.receive'")
    once(site.worker, "RuntimeError: the faults consumer was told to raise")
    assert log.count("Traceback (most recent call last)") == 1
    # ... and serves the other apps as before.
    await chat(site.address, {"after-fault": ["one", "two"]}, per_sender=3)


async def test_an_unrouted_message_is_logged_once_per_channel_and_dropped(site: Site) -> None:
    for _ in range(2):  # a connect no route takes is refused
        with pytest.raises(InvalidStatus) as refused:
            async with ws_connect(site.address, "/nowhere/"):
                pass
        assert refused.value.response.status_code == 403
    once(site.worker, "No route matches a message on 'websocket.connect'")
    async with ws_connect(site.address, "/liveblog/stream/") as reader:
        # The live blog is read-only: its websocket.receive has no route.
        await reader.send("hello?")
        await reader.send("anyone?")
        url = f"http://{site.address}/liveblog/posts/"
        _, created = await asyncio.to_thread(http_post, url, {"title": "Still live"})
        assert await recv_json(reader) == created  # the socket is as it was
    once(site.worker, "No route matches a message on 'websocket.receive'")
    assert "path='/liveblog/stream/'" in site.worker.output()
    log = site.worker.output()  # no traceback but a failing consumer's
    assert log.count("Traceback (most recent call last)") == log.count("Error in consumer")


# -- deployments of their own --------------------------------------------------------------------


async def test_the_chat_on_the_ipc_layer(tmp_path: Path) -> None:
    deployment = ClassicDeployment(tmp_path, ipc_layers(tmp_path / "ipc"))
    try:
        deployment.migrate()
        _, address = deployment.interface()
        deployment.worker()
        await chat(address, {"lobby": ["ann", "bob", "cat"], "garden": ["dan", "eve"]})
    finally:
        deployment.close()


async def test_channels_split_over_two_workers(tmp_path: Path) -> None:
    connections = ["websocket.connect", "websocket.disconnect", "http.request"]
    with RedisServer() as redis:
        deployment = ClassicDeployment(tmp_path, redis_layers(redis.url))
        try:
            deployment.migrate()
            _, address = deployment.interface()
            first = deployment.worker("--only-channels", *connections)
            second = deployment.worker("--exclude-channels", *connections)
            first.wait_for(
                "Running worker for channels http.request, websocket.connect, "
                "websocket.disconnect on layer 'default'"
            )
            second.wait_for("Running worker for channels websocket.receive on layer 'default'")
            # Connects on one worker, messages on the other: the room and the order travel
            # in the channel session.
            await chat(address, {"lobby": ["ann", "bob"], "garden": ["cat"]}, per_sender=8)
            async with ws_connect(address, "/faults/") as ws:
                await ws.send("which")
                assert await asyncio.wait_for(ws.recv(), 15) == f"echo which from {second.pid}"
            assert (await asyncio.to_thread(http_get, f"http://{address}/")).startswith("c1site")
        finally:
            deployment.close()


async def test_runserver_serves_the_project_alone(tmp_path: Path) -> None:
    deployment = ClassicDeployment(
        tmp_path, {"default": {"BACKEND": "switchboard.layers.inmemory.InMemoryChannelLayer"}}
    )
    try:
        deployment.migrate()
        server, address = deployment.runserver()
        assert await asyncio.to_thread(http_get, f"http://{address}/") == "c1site: hello anonymous"
        await chat(address, {"lobby": ["ann", "bob"]}, per_sender=3)
        assert server.popen.poll() is None
    finally:
        deployment.close()
