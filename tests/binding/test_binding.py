"""Data binding on the real server: notifications, permissions, transactions, coalescing and
inbound actions, with bindings as streams of a demultiplexer."""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import parse_qs

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.db.models.signals import post_save
from websockets.asyncio.client import connect

from switchboard.binding import AsyncWebsocketBinding, WebsocketBinding
from switchboard.db import database_sync_to_async
from switchboard.generic.websocket import AsyncJsonWebsocketDemultiplexer
from tests.sites.binding_app.models import Note
from tests.support.serving import serving


class NoteBinding(WebsocketBinding):
    """Default permissions (Django's model permissions); per-user visibility."""

    model = Note
    stream = "notes"
    fields = ["title", "value", "public", "owner"]
    form_fields = ["title", "value", "public"]  # the owner is whoever creates it
    coalesce_window = 0

    def can_view(self, user, data):
        return data["public"] or data["owner"] == user.pk

    def get_form(self, data, instance=None):
        form = super().get_form(data, instance)
        if instance is None:
            form.instance.owner = self.user
        return form


class SliderBinding(AsyncWebsocketBinding):
    """Anyone may watch and move the slider; rapid moves are coalesced."""

    model = Note
    stream = "slider"
    fields = ["value"]
    coalesce_window = 1.0  # generous: the tests below must fit their bursts in one window

    async def has_permission(self, user, action, pk):
        return action in ("subscribe", "update")


class Streams(AsyncJsonWebsocketDemultiplexer):
    applications = {"notes": NoteBinding.as_asgi(), "slider": SliderBinding.as_asgi()}


class UserFromQuery:
    """Test stand-in for AuthMiddlewareStack: ``?user=name`` picks scope["user"]."""

    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        name = parse_qs(scope["query_string"].decode()).get("user", [None])[0]
        user = AnonymousUser()
        if name:
            user = await database_sync_to_async(User.objects.get)(username=name)
        return await self.inner({**scope, "user": user}, receive, send)


application = UserFromQuery(Streams.as_asgi())


class Client:
    """One socket; frames of every stream are kept until asked for."""

    def __init__(self, ws):
        self.ws = ws
        self.frames: list[dict] = []

    async def send(self, stream: str, payload) -> None:
        await self.ws.send(json.dumps({"stream": stream, "payload": payload}))

    async def next(self, stream: str, timeout: float = 5) -> dict:
        """The next payload of ``stream`` (control frames are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            for i, frame in enumerate(self.frames):
                if frame.get("stream") == stream and "payload" in frame:
                    return self.frames.pop(i)["payload"]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self.frames.append(json.loads(await asyncio.wait_for(self.ws.recv(), remaining)))

    async def request(self, stream: str, payload: dict) -> dict:
        await self.send(stream, payload)
        notifications = []
        try:
            while True:
                got = await self.next(stream)
                if "response_to" in got:
                    return got
                notifications.append({"stream": stream, "payload": got})
        finally:
            self.frames[:0] = notifications  # still theirs to read, in order

    async def nothing(self, stream: str, wait: float = 0.5) -> None:
        with pytest.raises(asyncio.TimeoutError):
            got = await self.next(stream, timeout=wait)
            pytest.fail(f"expected nothing on {stream!r}, got {got}")


@pytest.fixture
async def server():
    async with serving(application) as netloc:
        yield netloc


async def _client(netloc: str, user: str | None, stack) -> Client:
    query = f"?user={user}" if user else ""
    ws = await stack.enter_async_context(connect(f"ws://{netloc}/{query}"))
    return Client(ws)


save = database_sync_to_async


@pytest.fixture
async def clients(server, users):
    from contextlib import AsyncExitStack

    async with AsyncExitStack() as stack:

        async def open_as(user: str | None) -> Client:
            return await _client(server, user, stack)

        yield open_as


async def test_subscribers_get_create_update_delete_with_only_the_bound_fields(clients, users):
    alice = await clients("alice")
    answer = await alice.request("notes", {"action": "subscribe", "request_id": 1})
    assert answer == {
        "response_to": "subscribe",
        "ok": True,
        "objects": [],
        "filter": {},
        "request_id": 1,
    }

    note = await save(Note.objects.create)(title="first", value=1, secret="not for sockets")
    created = await alice.next("notes")
    assert created == {
        "action": "create",
        "pk": note.pk,
        "model": "binding_app.note",
        "data": {"title": "first", "value": 1, "public": True, "owner": None},
    }
    note.title = "renamed"
    await save(note.save)()
    assert (await alice.next("notes"))["data"]["title"] == "renamed"
    await save(note.delete)()
    assert await alice.next("notes") == {
        "action": "delete",
        "pk": created["pk"],
        "model": "binding_app.note",
    }


async def test_an_unauthorised_user_gets_nothing_and_cannot_write(clients, users):
    bob = await clients("bob")  # no model permissions at all
    assert await bob.request("notes", {"action": "subscribe"}) == {
        "response_to": "subscribe",
        "ok": False,
        "error": "forbidden",
    }
    await save(Note.objects.create)(title="hidden from bob")
    await bob.nothing("notes")

    answer = await bob.request("notes", {"action": "create", "data": {"title": "by bob"}})
    assert answer["ok"] is False and answer["error"] == "forbidden"
    note = await save(Note.objects.create)(title="target")
    for action in ("update", "delete"):
        answer = await bob.request(
            "notes", {"action": action, "pk": note.pk, "data": {"title": "x"}}
        )
        assert answer["error"] == "forbidden"
    assert await save(lambda: sorted(Note.objects.values_list("title", flat=True)))() == [
        "hidden from bob",
        "target",
    ]


async def test_each_subscriber_sees_only_what_it_may_see(clients, users):
    alice, carol = await clients("alice"), await clients("carol")
    for client in (alice, carol):
        assert (await client.request("notes", {"action": "subscribe"}))["ok"] is True
    # Alice's private note: only she sees it.
    answer = await alice.request(
        "notes", {"action": "create", "data": {"title": "mine", "public": False}}
    )
    assert answer["ok"] is True, answer
    assert answer["data"]["owner"] == users["alice"].pk
    pk = answer["pk"]
    assert (await alice.next("notes"))["action"] == "create"
    await carol.nothing("notes")

    # Made public: carol now sees it (as an update of a pk she did not know)...
    answer = await alice.request("notes", {"action": "update", "pk": pk, "data": {"public": True}})
    assert answer["ok"] is True and answer["data"]["title"] == "mine"  # partial update
    assert (await carol.next("notes"))["data"]["public"] is True
    assert (await alice.next("notes"))["action"] == "update"
    # ...and private again: carol is told to drop it, without its data.
    await alice.request("notes", {"action": "update", "pk": pk, "data": {"public": False}})
    assert await carol.next("notes") == {"action": "delete", "pk": pk, "model": "binding_app.note"}
    await alice.next("notes")
    await save(Note.objects.filter(pk=pk).update)(title="quiet")  # queryset.update: no signal
    await save(lambda: Note.objects.get(pk=pk).delete())()
    assert (await alice.next("notes"))["action"] == "delete"
    await carol.nothing("notes")  # she was already told


async def test_subscriptions_to_one_instance_and_to_a_filtered_set(clients, users):
    a = await save(Note.objects.create)(title="a", value=1)
    b = await save(Note.objects.create)(title="b", value=2)
    one, many = await clients("carol"), await clients("carol")
    answer = await one.request("notes", {"action": "subscribe", "pk": a.pk})
    assert [o["pk"] for o in answer["objects"]] == [a.pk]
    answer = await many.request("notes", {"action": "subscribe", "filter": {"value": 2}})
    assert [o["data"]["title"] for o in answer["objects"]] == ["b"]

    b.title = "b2"
    await save(b.save)()
    assert (await many.next("notes"))["data"]["title"] == "b2"
    await one.nothing("notes", 0.3)
    a.value = 2  # a joins the filtered set, and is still the instance `one` watches
    await save(a.save)()
    assert (await one.next("notes"))["pk"] == a.pk
    assert (await many.next("notes"))["pk"] == a.pk
    b.value = 3  # b leaves the set
    await save(b.save)()
    assert await many.next("notes") == {"action": "delete", "pk": b.pk, "model": "binding_app.note"}

    # Subscribed twice (instance + set): each event still arrives once.
    await many.request("notes", {"action": "subscribe", "pk": a.pk})
    a.title = "once"
    await save(a.save)()
    assert (await many.next("notes"))["data"]["title"] == "once"
    await many.nothing("notes", 0.3)

    assert (await many.request("notes", {"action": "unsubscribe"}))["ok"] is True
    a.title = "unheard"
    await save(a.save)()
    await many.nothing("notes", 0.3)

    answer = await one.request("notes", {"action": "subscribe", "filter": {"secret": "x"}})
    assert answer["error"] == "bad_request"  # only bound fields, so nothing leaks through filters
    answer = await one.request("notes", {"action": "subscribe", "filter": {"owner__username": "a"}})
    assert answer["error"] == "bad_request"


async def test_a_rolled_back_write_sends_nothing_and_a_commit_sends_after_commit(clients, users):
    alice = await clients("alice")
    await alice.request("notes", {"action": "subscribe"})

    def rolled_back():
        with transaction.atomic():
            Note.objects.create(title="never")
            raise RuntimeError("rollback")

    with pytest.raises(RuntimeError):
        await save(rolled_back)()
    await alice.nothing("notes")

    in_transaction = asyncio.Event()

    def slow_commit(loop):
        with transaction.atomic():
            Note.objects.create(title="committed")
            loop.call_soon_threadsafe(in_transaction.set)
            time.sleep(1.5)  # the row is saved but not committed yet

    writer = asyncio.ensure_future(save(slow_commit)(asyncio.get_running_loop()))
    await in_transaction.wait()
    await alice.nothing("notes", 0.5)  # not before COMMIT
    await writer
    assert (await alice.next("notes"))["data"]["title"] == "committed"


async def test_rapid_saves_of_one_instance_are_coalesced_and_the_last_state_arrives(clients, users):
    watcher = await clients(None)
    note = await save(Note.objects.create)(title="slider")
    assert (await watcher.request("slider", {"action": "subscribe", "pk": note.pk}))["ok"]
    await asyncio.sleep(1.2)  # past the window the create opened

    def slide():
        for value in range(1, 41):
            note.value = value
            note.save()

    started = time.monotonic()
    await save(slide)()
    took = time.monotonic() - started
    got = [await watcher.next("slider")]  # the leading edge, at once
    while got[-1]["data"]["value"] != 40:
        got.append(await watcher.next("slider", timeout=5))
    assert got[0]["data"]["value"] == 1
    # 40 saves: the first, then the latest at the end of each window they spanned (normally
    # one window: two notifications in all).
    assert len(got) <= 2 + int(took / SliderBinding.coalesce_window), (took, got)
    await watcher.nothing("slider", 1.2)


async def test_rapid_updates_from_a_client_are_merged_into_few_writes(clients, users):
    note = await save(Note.objects.create)(title="knob")
    writes = []

    def count(sender, instance, **kwargs):
        writes.append(instance.value)

    post_save.connect(count, sender=Note, weak=False)
    try:
        mover = await clients(None)
        started = time.monotonic()
        for value in range(1, 31):
            await mover.send(
                "slider",
                {"action": "update", "pk": note.pk, "data": {"value": value}, "request_id": value},
            )
        took = time.monotonic() - started
        answers = [await mover.next("slider") for _ in range(30)]
        assert sorted(a["request_id"] for a in answers) == list(range(1, 31))
        assert all(a["ok"] and a["response_to"] == "update" for a in answers)
        # The first at once, the rest merged into one write per window they spanned.
        assert writes[-1] == 30
        assert len(writes) <= 2 + int(took / SliderBinding.coalesce_window), (took, writes)
        assert (await save(Note.objects.get)(pk=note.pk)).value == 30
    finally:
        post_save.disconnect(count, sender=Note)


async def test_inbound_actions_are_validated(clients, users):
    alice = await clients("alice")
    answer = await alice.request("notes", {"action": "create", "data": {"title": "x" * 41}})
    assert answer["ok"] is False and answer["error"] == "invalid"
    assert answer["errors"]["title"][0]["code"] == "max_length"
    answer = await alice.request("notes", {"action": "create", "data": {"value": 3}})
    assert answer["errors"]["title"][0]["code"] == "required"
    # Fields outside `fields` are not writable: "secret" is ignored.
    answer = await alice.request(
        "notes", {"action": "create", "data": {"title": "ok", "secret": "s"}}
    )
    assert answer["ok"] is True
    assert (await save(Note.objects.get)(pk=answer["pk"])).secret == ""
    answer = await alice.request(
        "notes", {"action": "update", "pk": answer["pk"], "data": {"value": "NaN-ish"}}
    )
    assert answer["error"] == "invalid" and "value" in answer["errors"]
    for bad in (
        {"action": "update", "pk": 999999, "data": {"title": "y"}},
        {"action": "delete", "pk": "not-a-pk"},
        {"action": "update", "pk": 1, "data": "not an object"},
        {"action": "explode"},
    ):
        answer = await alice.request("notes", bad)
        assert answer["ok"] is False
        assert answer["error"] == ("not_found" if bad.get("pk") == 999999 else "bad_request")
