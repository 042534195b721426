"""Channels 1's data binding: outbound frames on save and delete, read from the suite's
in-memory layer, and inbound create/update/delete through a demultiplexer (both forms), with
consumers called as the worker calls them on messages built by hand."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import AnonymousUser, Permission, User
from django.contrib.auth.models import Group as AuthGroup
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.test import Client

import switchboard.binding
import switchboard.binding.base
from switchboard.binding.websockets import WebsocketBinding
from switchboard.classic.binding import Binding
from switchboard.classic.message import HeldSends, Message, held_sends
from switchboard.generic.websockets import WebsocketConsumer, WebsocketDemultiplexer
from switchboard.layers import channel_layers
from tests.sites.binding_app.models import Note

pytestmark = pytest.mark.timeout(30)


class NoteBinding(WebsocketBinding):
    """Channels 1.1's form: ``group_names(cls, instance)``; staff may write."""

    model = Note
    stream = "cnotes"
    fields = ["title", "value", "public", "owner"]
    channel_session_user = False  # the tests put message.user there themselves
    asked: list[tuple[Any, ...]] = []

    @classmethod
    def group_names(cls, instance):
        return ["cnotes"] + (["cnotes-public"] if instance.public else [])

    def has_permission(self, user, action, pk):
        self.asked.append((getattr(user, "username", None), action, pk))
        return bool(user is not None and user.is_staff)


class OldNoteBinding(WebsocketBinding):
    """Channels 1.0's form: ``group_names(self, instance, action)``; a model named by label."""

    model = "binding_app.Note"
    stream = "oldnotes"
    exclude = ["secret"]
    channel_session_user = False

    def group_names(self, instance, action):
        return [f"oldnotes-{action}"]

    def has_permission(self, user, action, pk):
        return True


class AllNoteBinding(WebsocketBinding):
    """``fields = ["__all__"]``; the user comes from the channel session (the default)."""

    model = Note
    stream = "allnotes"
    fields = ["__all__"]

    @classmethod
    def group_names(cls, instance):
        return ["allnotes"]

    def has_permission(self, user, action, pk):
        return user.is_authenticated


class RoleBinding(WebsocketBinding):
    """A model with a many-to-many field (Django's auth groups and their permissions)."""

    model = AuthGroup
    stream = "roles"
    fields = ["name", "permissions"]
    channel_session_user = False

    @classmethod
    def group_names(cls, instance):
        return ["roles"] if instance.name.startswith("classic-") else []

    def has_permission(self, user, action, pk):
        return True


class Streams(WebsocketDemultiplexer):
    consumers = {
        "cnotes": NoteBinding.consumer,
        "allnotes": AllNoteBinding.consumer,
        "roles": RoleBinding.consumer,
    }


class Mapped(WebsocketDemultiplexer):
    mapping = {"oldnotes": "binding.oldnotes"}


@pytest.fixture(autouse=True)
def _no_notes():
    Note.objects.all().delete()
    NoteBinding.asked.clear()
    yield
    Note.objects.all().delete()


@pytest.fixture
def layer():
    return channel_layers["default"]  # what Group(...) sends on, in and out of consumers


@pytest.fixture
def reply() -> str:
    return f"websocket.send!{uuid.uuid4().hex}"


def listen(layer, *groups: str) -> str:
    inbox = f"inbox.{uuid.uuid4().hex}"
    for group in groups:
        async_to_sync(layer.group_add)(group, inbox)
    return inbox


def next_frame(layer, inbox: str, timeout: float = 2) -> dict[str, Any]:
    async def one() -> dict[str, Any]:
        return await asyncio.wait_for(layer.receive(inbox), timeout)

    message = async_to_sync(one)()
    assert set(message) == {"text"}
    return json.loads(message["text"])


def nothing(layer, inbox: str) -> None:
    with pytest.raises(asyncio.TimeoutError):
        got = next_frame(layer, inbox, timeout=0.2)
        pytest.fail(f"expected nothing on {inbox}, got {got}")


def staff(is_staff: bool = True) -> User:
    return User.objects.create_user(username=f"u{uuid.uuid4().hex[:12]}", is_staff=is_staff)


def frame(layer, reply, stream: str, payload: Any, user: Any = None) -> Message:
    text = json.dumps({"stream": stream, "payload": payload})
    message = Message(
        {"reply_channel": reply, "path": "/binding/", "text": text, "order": 1},
        "websocket.receive",
        layer,
    )
    if user is not None:
        message.user = user
    return message


def run(consumer: Any, message: Message, **kwargs: Any) -> HeldSends:
    with held_sends() as sends:
        consumer(message, **kwargs)
    return sends


def data(note: Note, **changed: Any) -> dict[str, Any]:
    return {
        "title": note.title,
        "value": note.value,
        "public": note.public,
        "owner": note.owner_id,
        **changed,
    }


# -- declaration ---------------------------------------------------------------------------


def test_the_channels_1_path_leaves_the_asgi_binding_alone() -> None:
    assert issubclass(WebsocketBinding, Binding)
    assert switchboard.binding.WebsocketBinding is switchboard.binding.base.WebsocketBinding
    assert switchboard.binding.WebsocketBinding is not WebsocketBinding
    assert switchboard.binding.__all__ == ["AsyncWebsocketBinding", "WebsocketBinding"]
    assert OldNoteBinding.model is Note and OldNoteBinding.model_label == "binding_app.note"
    assert OldNoteBinding.field_names() == ["title", "value", "public", "owner"]
    assert "secret" in AllNoteBinding.field_names()


def test_a_binding_must_say_its_fields_and_stream() -> None:
    with pytest.raises(ImproperlyConfigured, match="fields"):
        type("NoFields", (WebsocketBinding,), {"model": Note, "stream": "x"})
    with pytest.raises(ImproperlyConfigured, match="stream"):
        type("NoStream", (WebsocketBinding,), {"model": Note, "fields": ["title"]})


# -- outbound ------------------------------------------------------------------------------


def test_create_update_delete_go_to_every_group(layer) -> None:
    everyone, public = listen(layer, "cnotes"), listen(layer, "cnotes-public")
    note = Note.objects.create(title="hello", value=1, secret="s3")
    created = {
        "stream": "cnotes",
        "payload": {
            "action": "create",
            "pk": note.pk,
            "data": data(note),
            "model": "binding_app.note",
        },
    }
    assert next_frame(layer, everyone) == created
    assert next_frame(layer, public) == created
    note.value = 2
    note.save()
    for inbox in (everyone, public):
        payload = next_frame(layer, inbox)["payload"]
        assert (payload["action"], payload["data"]["value"]) == ("update", 2)
        assert "secret" not in payload["data"]
    pk = note.pk
    note.delete()
    for inbox in (everyone, public):
        assert next_frame(layer, inbox)["payload"] == {
            "action": "delete",
            "pk": pk,
            "data": data(note, value=2),
            "model": "binding_app.note",
        }
    nothing(layer, everyone)


def test_an_instance_leaving_a_group_is_deleted_there(layer) -> None:
    note = Note.objects.create(title="going private", public=True)
    everyone, public = listen(layer, "cnotes"), listen(layer, "cnotes-public")
    note.public = False
    note.save()
    assert next_frame(layer, public)["payload"]["action"] == "delete"
    assert next_frame(layer, everyone)["payload"]["action"] == "update"
    note.public = True
    note.save()
    assert next_frame(layer, public)["payload"]["action"] == "create"
    assert next_frame(layer, everyone)["payload"]["action"] == "update"


def test_the_1_0_form_gets_the_action(layer) -> None:
    creates, updates, deletes = (
        listen(layer, f"oldnotes-{a}") for a in ("create", "update", "delete")
    )
    note = Note.objects.create(title="old")
    note.save()
    note.delete()
    for inbox, action in ((creates, "create"), (updates, "update"), (deletes, "delete")):
        got = next_frame(layer, inbox)
        assert got["stream"] == "oldnotes" and got["payload"]["action"] == action
        assert set(got["payload"]["data"]) == {"title", "value", "public", "owner"}


def test_fields_all_sends_every_field(layer) -> None:
    inbox = listen(layer, "allnotes")
    note = Note.objects.create(title="all", secret="visible here")
    assert next_frame(layer, inbox)["payload"]["data"] == data(note, secret="visible here")


def test_frames_wait_for_the_commit(layer) -> None:
    inbox = listen(layer, "cnotes")
    with transaction.atomic():
        Note.objects.create(title="committed")
        nothing(layer, inbox)
    assert next_frame(layer, inbox)["payload"]["data"]["title"] == "committed"
    with pytest.raises(RuntimeError), transaction.atomic():
        Note.objects.create(title="rolled back")
        raise RuntimeError
    nothing(layer, inbox)


# -- inbound through a demultiplexer (Channels 1.1) ----------------------------------------


def test_inbound_create_update_delete(layer, reply) -> None:
    inbox = listen(layer, "cnotes")
    boss = staff()
    payload = {"action": "create", "data": {"title": "new", "value": 3, "secret": "ignored"}}
    assert run(Streams, frame(layer, reply, "cnotes", payload, boss)).held == []
    note = Note.objects.get()
    assert (note.title, note.value, note.secret) == ("new", 3, "")  # unbound fields untouched
    assert next_frame(layer, inbox)["payload"]["action"] == "create"

    payload = {"action": "update", "pk": note.pk, "data": {"value": 9}}
    run(Streams, frame(layer, reply, "cnotes", payload, boss))
    note.refresh_from_db()
    assert (note.title, note.value) == ("new", 9)  # fields not sent keep their values
    assert next_frame(layer, inbox)["payload"]["data"]["value"] == 9

    run(Streams, frame(layer, reply, "cnotes", {"action": "delete", "pk": note.pk}, boss))
    assert not Note.objects.exists()
    assert next_frame(layer, inbox)["payload"]["action"] == "delete"
    assert NoteBinding.asked == [
        (boss.username, "create", None),
        (boss.username, "update", note.pk),
        (boss.username, "delete", note.pk),
    ]


@pytest.mark.parametrize("user", ["none", "anonymous", "not staff"])
def test_inbound_without_permission_saves_nothing(layer, reply, caplog, user) -> None:
    who = None if user == "none" else AnonymousUser()
    if user == "not staff":
        who = staff(is_staff=False)
    note = Note.objects.create(title="keep", value=1)
    inbox = listen(layer, "cnotes")
    with caplog.at_level(logging.WARNING, "switchboard.classic.binding"):
        for payload in (
            {"action": "create", "data": {"title": "no"}},
            {"action": "update", "pk": note.pk, "data": {"value": 5}},
            {"action": "delete", "pk": note.pk},
        ):
            run(Streams, frame(layer, reply, "cnotes", payload, who))
    assert list(Note.objects.values_list("title", "value")) == [("keep", 1)]
    assert caplog.text.count("refused") == 3 and "forbidden" in caplog.text
    nothing(layer, inbox)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"action": "update", "pk": 999999, "data": {"value": 5}}, "not_found"),
        ({"action": "delete", "pk": 999999}, "not_found"),
        ({"action": "delete", "pk": "not-a-pk"}, "not_found"),
        ({"action": "update", "pk": "KNOWN", "data": {"value": "abc"}}, "value"),
        ({"action": "update", "pk": "KNOWN", "data": {"title": "x" * 41}}, "title"),
        ({"action": "create", "data": {"title": "t", "owner": 999999}}, "owner"),
        ({"action": "create", "data": "not an object"}, "bad_request"),
        ({"action": "explode"}, "bad_request"),
        ({"pk": 1}, "bad_request"),
    ],
)
def test_inbound_refusals_are_logged_not_raised(layer, reply, caplog, payload, reason) -> None:
    note = Note.objects.create(title="keep", value=1)
    if payload.get("pk") == "KNOWN":
        payload = {**payload, "pk": note.pk}
    inbox = listen(layer, "cnotes")
    with caplog.at_level(logging.WARNING, "switchboard.classic.binding"):
        run(Streams, frame(layer, reply, "cnotes", payload, staff()))
    assert list(Note.objects.values_list("title", "value")) == [("keep", 1)]
    assert "NoteBinding refused" in caplog.text and reason in caplog.text
    nothing(layer, inbox)


def test_connect_and_disconnect_reach_the_binding_harmlessly(layer, reply) -> None:
    base = {"reply_channel": reply, "path": "/binding/", "order": 0}
    connect = Message({**base, "headers": [], "query_string": ""}, "websocket.connect", layer)
    assert [h.content for h in run(Streams, connect).held] == [{"accept": True}]
    gone = Message({**base, "code": 1000}, "websocket.disconnect", layer)
    assert run(Streams, gone).held == []


def test_the_user_comes_from_the_channel_session_by_default(layer, reply) -> None:
    class LogsIn(WebsocketConsumer):
        http_user = True  # copies the HTTP user into the channel session at connect

    user = staff(is_staff=False)
    client = Client()
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    headers = [[b"host", b"testserver"], [b"cookie", cookie]]
    content = {
        "reply_channel": reply,
        "path": "/",
        "headers": headers,
        "query_string": "",
        "order": 0,
    }
    run(LogsIn, Message(content, "websocket.connect", layer))

    run(Streams, frame(layer, reply, "allnotes", {"action": "create", "data": {"title": "mine"}}))
    assert list(Note.objects.values_list("title", flat=True)) == ["mine"]
    stranger = f"websocket.send!{uuid.uuid4().hex}"  # nobody logged in on this connection
    run(Streams, frame(layer, stranger, "allnotes", {"action": "create", "data": {"title": "x"}}))
    assert list(Note.objects.values_list("title", flat=True)) == ["mine"]


def test_many_to_many_fields_go_out_and_come_in_as_primary_keys(layer, reply) -> None:
    inbox = listen(layer, "roles")
    perms = sorted(Permission.objects.values_list("pk", flat=True)[:2])
    name = f"classic-{uuid.uuid4().hex[:8]}"
    create = {"action": "create", "data": {"name": name, "permissions": perms}}
    run(Streams, frame(layer, reply, "roles", create))
    role = AuthGroup.objects.get(name=name)
    assert sorted(role.permissions.values_list("pk", flat=True)) == perms
    # post_save comes before the many-to-many rows are written (as in Channels 1)
    assert next_frame(layer, inbox)["payload"]["data"] == {"name": name, "permissions": []}
    update = {"action": "update", "pk": role.pk, "data": {"permissions": perms[:1]}}
    run(Streams, frame(layer, reply, "roles", update))
    assert next_frame(layer, inbox)["payload"]["data"] == {"name": name, "permissions": perms}
    assert list(role.permissions.values_list("pk", flat=True)) == perms[:1]
    role.save()
    assert next_frame(layer, inbox)["payload"]["data"]["permissions"] == perms[:1]
    role.delete()


# -- inbound through a mapped channel (Channels 1.0) ---------------------------------------


def test_a_mapped_stream_reaches_the_binding_consumer(layer, reply) -> None:
    note = Note.objects.create(title="old", value=1)
    payload = {"action": "update", "pk": note.pk, "data": {"value": 7}}
    [held] = run(Mapped, frame(layer, reply, "oldnotes", payload)).held
    assert (held.target, held.content) == ("binding.oldnotes", {**payload, "reply_channel": reply})
    run(OldNoteBinding.consumer, Message(held.content, held.target, layer))
    note.refresh_from_db()
    assert note.value == 7
