"""Channels 1's user decorators: a user logged in over HTTP (Django's own login, through its
test client), seen by WebSocket consumers at connect and carried to the connection's later
messages in the channel session. Real database sessions, messages built by hand on the
in-memory layer, consumers called as the worker calls them."""

from __future__ import annotations

import asyncio
import uuid
from importlib import import_module
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.test import Client

import switchboard.auth
from switchboard.auth import (  # the Channels 1 path, as projects import them
    channel_and_http_session_user_from_http,
    channel_session_user,
    channel_session_user_from_http,
    http_session_user,
    transfer_user,
)
from switchboard.classic import auth as classic_auth
from switchboard.classic.message import Message, held_sends
from switchboard.classic.sessions import session_for_reply_channel
from switchboard.layers.inmemory import InMemoryChannelLayer

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def layer() -> InMemoryChannelLayer:
    return InMemoryChannelLayer()


def new_reply() -> str:
    return f"websocket.send!{uuid.uuid4().hex}"


def new_user() -> User:
    return User.objects.create_user(username=f"u{uuid.uuid4().hex[:12]}", password="pw")


def logged_in_cookie(user: User) -> str:
    """The session key a browser holds after logging in through Django."""
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def connect(layer: InMemoryChannelLayer, reply: str, session_key: str | None = None) -> Message:
    headers = [[b"host", b"testserver"]]
    if session_key:
        headers.append([b"cookie", f"sessionid={session_key}".encode()])
    content = {
        "reply_channel": reply,
        "path": "/ws/",
        "query_string": "",
        "headers": headers,
        "order": 0,
    }
    return Message(content, "websocket.connect", layer)


def receive(layer: InMemoryChannelLayer, reply: str, order: int = 1) -> Message:
    content = {"reply_channel": reply, "path": "/ws/", "text": "hi", "order": order}
    return Message(content, "websocket.receive", layer)


def consume(consumer: Any, message: Message) -> None:
    with held_sends() as sends:
        consumer(message)
    for held in sends.held:
        async_to_sync(held.layer.send)(held.target, held.content)


def read(layer: InMemoryChannelLayer, channel: str) -> dict[str, Any]:
    async def one() -> dict[str, Any]:
        return await asyncio.wait_for(layer.receive(channel), 2)

    return async_to_sync(one)()


def say_user(message: Any) -> None:
    user = message.user
    message.reply_channel.send({"text": user.username if user.is_authenticated else "anon"})


def test_the_channels_1_paths_are_the_classic_decorators() -> None:
    for name in classic_auth.__all__:
        if name != "user_in_session":
            assert getattr(switchboard.auth, name) is getattr(classic_auth, name)
    assert switchboard.auth.AuthMiddlewareStack  # Channels 2's names are still there


def test_http_session_user_sees_who_logged_in_over_http(layer) -> None:
    user = new_user()
    key = logged_in_cookie(user)
    reply = new_reply()
    consume(http_session_user(say_user), connect(layer, reply, key))
    consume(http_session_user(say_user), connect(layer, reply))  # no cookie
    consume(http_session_user(say_user), connect(layer, reply, "notasession12345"))
    assert [read(layer, reply)["text"] for _ in range(3)] == [user.username, "anon", "anon"]


def test_a_password_change_ends_the_user_but_not_the_session(layer) -> None:
    user = new_user()
    key = logged_in_cookie(user)
    user.set_password("another")
    user.save()
    reply = new_reply()
    consume(http_session_user(say_user), connect(layer, reply, key))
    assert read(layer, reply) == {"text": "anon"}
    assert Session.objects.filter(session_key=key).exists()  # read, not flushed


def test_the_http_user_is_carried_into_the_channel_session(layer) -> None:
    user = new_user()
    key = logged_in_cookie(user)
    reply, stranger = new_reply(), new_reply()
    consume(channel_session_user_from_http(say_user), connect(layer, reply, key))
    consume(channel_session_user(say_user), receive(layer, reply))  # no cookie on this one
    consume(channel_session_user(say_user), receive(layer, stranger))
    assert read(layer, reply) == {"text": user.username}
    assert read(layer, reply) == {"text": user.username}
    assert read(layer, stranger) == {"text": "anon"}
    channel = session_for_reply_channel(reply)
    http = import_module(settings.SESSION_ENGINE).SessionStore(key)
    for auth_key in (SESSION_KEY, BACKEND_SESSION_KEY, HASH_SESSION_KEY):
        assert channel[auth_key] == http[auth_key]


def test_from_http_on_a_later_message_reads_the_channel_session(layer) -> None:
    user = new_user()
    reply = new_reply()
    consumer = channel_session_user_from_http(say_user)
    consume(consumer, connect(layer, reply, logged_in_cookie(user)))
    consume(consumer, receive(layer, reply))
    assert [read(layer, reply)["text"] for _ in range(2)] == [user.username] * 2


def test_an_anonymous_connect_leaves_no_user_in_the_channel_session(layer) -> None:
    reply = new_reply()
    consume(channel_session_user_from_http(say_user), connect(layer, reply))
    consume(channel_session_user(say_user), receive(layer, reply))
    assert [read(layer, reply)["text"] for _ in range(2)] == ["anon", "anon"]
    assert SESSION_KEY not in session_for_reply_channel(reply)


def test_channel_and_http_session_user_from_http(layer) -> None:
    user = new_user()
    key = logged_in_cookie(user)
    reply = new_reply()

    @channel_and_http_session_user_from_http
    def both(message: Any) -> None:
        http = message.http_session
        message.reply_channel.send(
            {"text": f"{message.user.username}:{http.session_key if http else None}"}
        )

    consume(both, connect(layer, reply, key))
    consume(both, receive(layer, reply))
    assert read(layer, reply) == {"text": f"{user.username}:{key}"}
    assert read(layer, reply) == {"text": f"{user.username}:{key}"}


def test_transfer_user_copies_the_login_and_nothing_else() -> None:
    user = new_user()
    engine = import_module(settings.SESSION_ENGINE)
    http = engine.SessionStore(logged_in_cookie(user))
    target = engine.SessionStore()
    target["mine"] = 1
    transfer_user(http, target)
    assert {k: target[k] for k in (SESSION_KEY, BACKEND_SESSION_KEY, HASH_SESSION_KEY)} == {
        k: http[k] for k in (SESSION_KEY, BACKEND_SESSION_KEY, HASH_SESSION_KEY)
    }
    assert target["mine"] == 1
    empty = engine.SessionStore()
    transfer_user(empty, target)  # nobody logged in there: nothing changes
    assert target[SESSION_KEY] == str(user.pk)
