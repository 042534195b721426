"""Channels 1's ``allowed_hosts_only``: a connect consumer runs only for an Origin whose host is
in ALLOWED_HOSTS; any other gets ``{"close": True}`` on its reply channel, read back here from
the in-memory layer. Consumers are called as the worker calls them."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.test import override_settings

from switchboard.classic import security as classic_security
from switchboard.classic.message import HeldSends, Message, held_sends
from switchboard.layers.inmemory import InMemoryChannelLayer
from switchboard.security.websockets import (  # the Channels 1 path
    AllowedHostsOnlyOriginValidator,
    BaseOriginValidator,
    allowed_hosts_only,
)

pytestmark = pytest.mark.timeout(30)

ran: list[str] = []


@allowed_hosts_only
def ws_connect(message: Any) -> None:
    ran.append(message["path"])
    message.reply_channel.send({"accept": True})


@pytest.fixture
def layer() -> InMemoryChannelLayer:
    ran.clear()
    return InMemoryChannelLayer()


def connect(layer: InMemoryChannelLayer, reply: str, origin: bytes | None) -> Message:
    headers = [[b"host", b"testserver"]]
    if origin is not None:
        headers.append([b"origin", origin])
    content = {"reply_channel": reply, "path": "/ws/", "headers": headers, "order": 0}
    return Message(content, "websocket.connect", layer)


def consume(consumer: Any, message: Message) -> HeldSends:
    with held_sends() as sends:
        consumer(message)
    for held in sends.held:
        async_to_sync(held.layer.send)(held.target, held.content)
    return sends


def answer(layer: InMemoryChannelLayer, origin: bytes | None) -> dict[str, Any]:
    reply = f"websocket.send!{uuid.uuid4().hex}"
    consume(ws_connect, connect(layer, reply, origin))

    async def one() -> dict[str, Any]:
        return await asyncio.wait_for(layer.receive(reply), 2)

    return async_to_sync(one)()


def test_the_channels_1_path() -> None:
    assert allowed_hosts_only is AllowedHostsOnlyOriginValidator
    assert allowed_hosts_only is classic_security.allowed_hosts_only
    assert issubclass(AllowedHostsOnlyOriginValidator, BaseOriginValidator)
    assert ws_connect.__name__ == "ws_connect"  # looks like the consumer it wraps


def test_a_foreign_origin_is_closed_and_the_consumer_does_not_run(layer) -> None:
    assert answer(layer, b"http://evil.example.net") == {"close": True}
    assert ran == []


def test_an_allowed_origin_reaches_the_consumer(layer) -> None:
    # The suite's ALLOWED_HOSTS: localhost, 127.0.0.1, testserver, allowed.example.com.
    assert answer(layer, b"https://allowed.example.com") == {"accept": True}
    assert answer(layer, b"http://localhost:8000") == {"accept": True}
    assert ran == ["/ws/", "/ws/"]


def test_a_connect_without_an_origin_is_refused(layer) -> None:
    assert answer(layer, None) == {"close": True}
    assert answer(layer, "http://bücher.example".encode()) == {"close": True}  # not ASCII
    assert ran == []


def test_allowed_hosts_are_read_at_each_connect(layer) -> None:
    with override_settings(ALLOWED_HOSTS=[".example.org"]):
        assert answer(layer, b"https://chat.example.org") == {"accept": True}
        assert answer(layer, b"https://allowed.example.com") == {"close": True}
    with override_settings(DEBUG=True, ALLOWED_HOSTS=[]):  # Django's local fallback
        assert answer(layer, b"http://localhost:8000") == {"accept": True}
        assert answer(layer, b"http://[::1]:8000") == {"accept": True}
        assert answer(layer, b"http://example.com") == {"close": True}


def test_messages_without_headers_pass(layer) -> None:
    reply = f"websocket.send!{uuid.uuid4().hex}"
    content = {"reply_channel": reply, "path": "/ws/", "text": "hi", "order": 1}
    consume(ws_connect, Message(content, "websocket.receive", layer))
    assert ran == ["/ws/"]


def test_a_validator_of_ones_own(layer) -> None:
    class OnlyExampleOrg(BaseOriginValidator):
        def validate_origin(self, message: Any, origin: str) -> bool:
            return origin == "https://example.org"

    @OnlyExampleOrg
    def consumer(message: Any) -> None:
        ran.append("ran")

    reply = f"websocket.send!{uuid.uuid4().hex}"
    sends = consume(consumer, connect(layer, reply, b"https://example.org"))
    assert ran == ["ran"] and sends.held == []
    sends = consume(consumer, connect(layer, reply, b"https://example.com"))
    assert ran == ["ran"]
    assert [(h.target, h.content) for h in sends.held] == [(reply, {"close": True})]
