"""Channels 1's session and ordering decorators, on the suite's database session engine.

Messages are built by hand on the in-memory layer and consumers are called as the worker calls
them (``with held_sends(): consumer(message)``); what they send is read back from the layer.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from importlib import import_module
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import override_settings

from switchboard.classic.message import HeldSends, Message, held_sends
from switchboard.classic.sessions import (
    HTTP_SESSION_KEY,
    NEXT_ORDER_KEY,
    channel_and_http_session,
    channel_session,
    channel_session_key,
    enforce_ordering,
    http_session,
    session_for_reply_channel,
)
from switchboard.exceptions import ConsumeLater
from switchboard.layers.inmemory import InMemoryChannelLayer

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def layer() -> InMemoryChannelLayer:
    return InMemoryChannelLayer()


def new_reply() -> str:
    return f"websocket.send!{uuid.uuid4().hex}"


def message(
    layer: InMemoryChannelLayer, channel: str, reply: str | None, **content: Any
) -> Message:
    if reply is not None:
        content["reply_channel"] = reply
    content.setdefault("path", "/chat/")
    return Message(content, channel, layer)


def connect(layer: InMemoryChannelLayer, reply: str, **content: Any) -> Message:
    content.setdefault("headers", [[b"host", b"testserver"]])
    content.setdefault("query_string", "")
    content.setdefault("order", 0)
    return message(layer, "websocket.connect", reply, **content)


def receive(layer: InMemoryChannelLayer, reply: str, text: str, order: int) -> Message:
    return message(layer, "websocket.receive", reply, text=text, order=order)


def consume(consumer: Any, msg: Message, **kwargs: Any) -> HeldSends:
    """As the worker runs a consumer, sending what it held once it returns."""
    with held_sends() as sends:
        consumer(msg, **kwargs)
    for held in sends.held:
        async_to_sync(held.layer.send)(held.target, held.content)
    return sends


def read(layer: InMemoryChannelLayer, channel: str) -> dict[str, Any]:
    async def one() -> dict[str, Any]:
        return await asyncio.wait_for(layer.receive(channel), 2)

    return async_to_sync(one)()


def http_session_with(**data: Any) -> str:
    store = import_module(settings.SESSION_ENGINE).SessionStore()
    store.update(data)
    store.save()
    return store.session_key


def cookie(key: str) -> list[list[bytes]]:
    return [[b"host", b"testserver"], [b"cookie", f"csrftoken=x; sessionid={key}".encode()]]


# -- channel_session ------------------------------------------------------------------------


@channel_session
def remember_room(message: Any) -> None:
    message.channel_session["room"] = message["path"].strip("/")


@channel_session
def say_room(message: Any) -> None:
    message.reply_channel.send({"text": str(message.channel_session.get("room"))})


def test_the_channel_session_lasts_between_messages_of_one_reply_channel(layer) -> None:
    ada, bob = new_reply(), new_reply()
    consume(remember_room, connect(layer, ada, path="/lobby/"))
    consume(say_room, receive(layer, ada, "hi", 1))
    consume(say_room, receive(layer, bob, "hi", 1))  # another connection: its own session
    assert read(layer, ada) == {"text": "lobby"}
    assert read(layer, bob) == {"text": "None"}


def test_the_session_key_is_derived_from_the_reply_channel(layer) -> None:
    reply = new_reply()
    key = channel_session_key(reply)
    # A key every session engine takes: 32 characters of [a-z0-9], like Django's own.
    assert re.fullmatch(r"ch[0-9a-f]{30}", key)
    assert key == channel_session_key(reply) != channel_session_key(new_reply())
    assert reply.split("!")[1] not in key  # a hash, not the name
    consume(remember_room, connect(layer, reply, path="/kitchen/"))
    stored = Session.objects.get(session_key=key)
    assert stored.get_decoded() == {"room": "kitchen"}
    assert session_for_reply_channel(reply)["room"] == "kitchen"
    with override_settings(SECRET_KEY="another-secret-for-this-test-only"):
        assert channel_session_key(reply) != key  # keyed by SECRET_KEY: not guessable


def test_a_channel_session_is_created_on_first_use(layer) -> None:
    reply = new_reply()
    seen: list[Any] = []
    channel_session(lambda m: seen.append(dict(m.channel_session)))(connect(layer, reply))
    assert seen == [{}]
    assert Session.objects.filter(session_key=channel_session_key(reply)).exists()


def test_a_consumer_that_raises_leaves_the_channel_session_unchanged(layer) -> None:
    reply = new_reply()
    consume(remember_room, connect(layer, reply, path="/before/"))

    @channel_session
    def fails(message: Any) -> None:
        message.channel_session["room"] = "after"
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        consume(fails, receive(layer, reply, "x", 1))
    assert session_for_reply_channel(reply)["room"] == "before"


def test_nested_channel_sessions_share_one_session_saved_once(layer) -> None:
    reply = new_reply()

    @channel_session
    @channel_session
    def both(message: Any) -> None:
        message.channel_session["n"] = 1

    consume(both, connect(layer, reply))
    assert session_for_reply_channel(reply)["n"] == 1


def test_a_message_without_reply_channel_is_a_clear_error(layer) -> None:
    with pytest.raises(ValueError, match=r"remember_room .*no reply_channel"):
        consume(remember_room, message(layer, "some.channel", None))


def test_signed_cookie_sessions_cannot_hold_a_channel_session(layer) -> None:
    engine = "django.contrib.sessions.backends.signed_cookies"
    with override_settings(CHANNEL_SESSION_ENGINE=engine):
        with pytest.raises(ValueError, match="signed-cookie"):
            consume(remember_room, connect(layer, new_reply()))


# -- http_session ---------------------------------------------------------------------------


@http_session
def report_http_session(message: Any) -> None:
    session = message.http_session
    text = "none" if session is None else str(session.get("colour"))
    message.reply_channel.send({"text": text})


def test_the_http_session_comes_from_the_cookie(layer) -> None:
    key = http_session_with(colour="green")
    reply = new_reply()
    consume(report_http_session, connect(layer, reply, headers=cookie(key)))
    assert read(layer, reply) == {"text": "green"}


def test_the_http_session_comes_from_a_session_key_parameter(layer) -> None:
    key = http_session_with(colour="blue")
    reply = new_reply()
    consume(report_http_session, connect(layer, reply, query_string=f"a=1&session_key={key}"))
    assert read(layer, reply) == {"text": "blue"}
    bytes_query = connect(layer, reply, query_string=f"session_key={key}".encode())
    consume(report_http_session, bytes_query)  # a layer may hand the query string as bytes
    assert read(layer, reply) == {"text": "blue"}


def test_no_cookie_no_http_session(layer) -> None:
    reply = new_reply()
    consume(report_http_session, connect(layer, reply))
    consume(report_http_session, receive(layer, reply, "no headers here", 1))
    assert [read(layer, reply), read(layer, reply)] == [{"text": "none"}, {"text": "none"}]


def test_changes_to_an_existing_http_session_are_saved_and_none_is_created(layer) -> None:
    key = http_session_with(colour="green")

    @http_session
    def paint(message: Any) -> None:
        message.http_session["colour"] = "red"

    consume(paint, connect(layer, new_reply(), headers=cookie(key)))
    assert Session.objects.get(session_key=key).get_decoded() == {"colour": "red"}
    before = Session.objects.count()
    consume(paint, connect(layer, new_reply(), headers=cookie("nosuchsession0000")))
    assert Session.objects.count() == before


# -- channel_and_http_session ---------------------------------------------------------------


@channel_and_http_session
def both_sessions(message: Any) -> None:
    http = message.http_session
    message.reply_channel.send(
        {"text": "none" if http is None else f"{http.session_key}:{http.get('colour')}"}
    )


def test_the_http_session_follows_the_connection_after_connect(layer) -> None:
    key = http_session_with(colour="teal")
    reply, other = new_reply(), new_reply()
    consume(both_sessions, connect(layer, reply, headers=cookie(key)))
    consume(both_sessions, receive(layer, reply, "later", 1))  # no cookies on this one
    consume(both_sessions, receive(layer, other, "later", 1))
    assert read(layer, reply) == {"text": f"{key}:teal"}
    assert read(layer, reply) == {"text": f"{key}:teal"}
    assert read(layer, other) == {"text": "none"}
    assert session_for_reply_channel(reply)[HTTP_SESSION_KEY] == key


# -- enforce_ordering -----------------------------------------------------------------------


ran: list[tuple[str, int]] = []


@enforce_ordering
def strict(message: Any) -> None:
    ran.append((message.channel.name, message["order"]))
    message.channel_session["last"] = message["order"]


@enforce_ordering(slight=True)
def slight(message: Any) -> None:
    ran.append((message.channel.name, message["order"]))


@pytest.fixture(autouse=True)
def _clear_ran() -> None:
    ran.clear()


def test_strict_ordering_puts_early_messages_back(layer) -> None:
    reply = new_reply()
    with pytest.raises(ConsumeLater):
        consume(strict, receive(layer, reply, "second", 1))
    consume(strict, connect(layer, reply))
    with pytest.raises(ConsumeLater):
        consume(strict, receive(layer, reply, "third", 2))
    consume(strict, receive(layer, reply, "second", 1))  # its turn now
    consume(strict, receive(layer, reply, "third", 2))
    assert ran == [("websocket.connect", 0), ("websocket.receive", 1), ("websocket.receive", 2)]
    session = session_for_reply_channel(reply)
    assert session[NEXT_ORDER_KEY] == 3
    assert session["last"] == 2


def test_strict_ordering_drops_a_message_whose_turn_has_passed(layer) -> None:
    reply = new_reply()
    consume(strict, connect(layer, reply))
    consume(strict, receive(layer, reply, "first", 1))
    consume(strict, receive(layer, reply, "a copy of first", 1))
    assert ran == [("websocket.connect", 0), ("websocket.receive", 1)]


def test_a_failing_consumer_still_lets_the_next_message_run(layer) -> None:
    reply = new_reply()

    @enforce_ordering
    def fails_at_one(message: Any) -> None:
        message.channel_session["touched"] = message["order"]
        if message["order"] == 1:
            raise RuntimeError("boom")

    consume(fails_at_one, connect(layer, reply))
    with pytest.raises(RuntimeError):
        consume(fails_at_one, receive(layer, reply, "fails", 1))
    session = session_for_reply_channel(reply)
    assert session[NEXT_ORDER_KEY] == 2
    assert session["touched"] == 0  # the failed consumer's own changes are not kept
    consume(fails_at_one, receive(layer, reply, "runs", 2))
    assert session_for_reply_channel(reply)["touched"] == 2


def test_strict_ordering_needs_an_order(layer) -> None:
    with pytest.raises(ValueError, match=r"strict .*has no 'order'"):
        consume(strict, message(layer, "websocket.receive", new_reply(), text="x"))


def test_slight_ordering_only_makes_connect_run_first(layer) -> None:
    reply = new_reply()
    with pytest.raises(ConsumeLater):
        consume(slight, receive(layer, reply, "too soon", 2))
    consume(slight, connect(layer, reply))
    assert session_for_reply_channel(reply)[NEXT_ORDER_KEY] == 1
    consume(slight, receive(layer, reply, "third", 3))  # out of order is fine now
    consume(slight, receive(layer, reply, "second", 2))
    assert ran == [("websocket.connect", 0), ("websocket.receive", 3), ("websocket.receive", 2)]


def test_enforce_ordering_forms(layer) -> None:
    reply = new_reply()

    def consumer(message: Any) -> None:
        ran.append(("plain", message["order"]))

    wrapped = enforce_ordering(consumer, slight=True)
    assert wrapped.__name__ == "consumer"
    consume(wrapped, connect(layer, reply))
    assert ran == [("plain", 0)]
