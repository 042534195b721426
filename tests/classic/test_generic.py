"""Channels 1's class-based consumers and the demultiplexer, called as the worker calls them
(``with held_sends() as sends: Consumer(message, **kwargs)``) on messages built by hand on the
in-memory layer; what they send is read from ``sends.held``, group memberships from the layer.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import User
from django.test import Client

import switchboard.generic.websocket as channels2_websocket
from switchboard.classic.generic import BaseConsumer as ClassicBase
from switchboard.classic.message import HeldSends, Message, held_sends
from switchboard.classic.routing import Router, route, route_class
from switchboard.classic.sessions import NEXT_ORDER_KEY
from switchboard.exceptions import ConsumeLater
from switchboard.generic.base import BaseConsumer
from switchboard.generic.websockets import (
    JsonWebsocketConsumer,
    SendNotAvailableOnDemultiplexer,
    WebsocketConsumer,
    WebsocketDemultiplexer,
    WebsocketMultiplexer,
)
from switchboard.layers import channel_layers
from switchboard.layers.inmemory import InMemoryChannelLayer

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def layer() -> InMemoryChannelLayer:
    return InMemoryChannelLayer()


@pytest.fixture
def reply() -> str:
    return f"websocket.send!{uuid.uuid4().hex}"


def connect(layer, reply, path="/chat/lobby/", **content: Any) -> Message:
    content = {"reply_channel": reply, "path": path, "query_string": "", "order": 0, **content}
    content.setdefault("headers", [[b"host", b"testserver"]])
    return Message(content, "websocket.connect", layer)


def receive(layer, reply, order=1, path="/chat/lobby/", **frame: Any) -> Message:
    content = {"reply_channel": reply, "path": path, "order": order, **frame}
    return Message(content, "websocket.receive", layer)


def disconnect(layer, reply, order=2, path="/chat/lobby/") -> Message:
    content = {"reply_channel": reply, "path": path, "code": 1000, "order": order}
    return Message(content, "websocket.disconnect", layer)


def run(consumer: Any, message: Message, **kwargs: Any) -> HeldSends:
    with held_sends() as sends:
        consumer(message, **kwargs)
    return sends


def sent(sends: HeldSends, target: str, group: bool = False) -> list[dict[str, Any]]:
    return [h.content for h in sends.held if h.target == target and h.group == group]


def members(layer: InMemoryChannelLayer, group: str) -> list[str]:
    return list(layer.groups.members(group))


def frames(sends: HeldSends, reply: str) -> list[Any]:
    """The JSON text frames sent to ``reply``, decoded."""
    return [json.loads(c["text"]) for c in sent(sends, reply) if "text" in c]


# -- public paths --------------------------------------------------------------------------


def test_the_channels_1_paths_are_the_classic_classes() -> None:
    assert BaseConsumer is ClassicBase
    assert issubclass(WebsocketDemultiplexer, JsonWebsocketConsumer)
    assert issubclass(JsonWebsocketConsumer, WebsocketConsumer)
    assert issubclass(WebsocketConsumer, BaseConsumer)
    # Channels 2's module, one letter away, keeps its own classes.
    assert channels2_websocket.WebsocketConsumer is not WebsocketConsumer
    assert channels2_websocket.JsonWebsocketConsumer is not JsonWebsocketConsumer


# -- BaseConsumer --------------------------------------------------------------------------


class Counter(BaseConsumer):
    method_mapping = {"jobs.count": "count", "jobs.reset": "reset"}
    seen: list[tuple[Any, ...]] = []

    def count(self, message, **kwargs):
        self.seen.append(("count", id(self), self.message is message, self.kwargs, message["n"]))

    def reset(self, message, **kwargs):
        self.seen.append(("reset", kwargs))


def test_base_consumer_dispatches_each_message_to_a_new_instance(layer) -> None:
    Counter.seen.clear()
    assert Counter.channel_names() == {"jobs.count", "jobs.reset"}
    first = Counter(Message({"n": 1}, "jobs.count", layer), room="a")
    second = Counter(Message({"n": 2}, "jobs.count", layer))
    Counter(Message({}, "jobs.reset", layer), x=1)
    assert first is not second
    assert Counter.seen == [
        ("count", id(first), True, {"room": "a"}, 1),
        ("count", id(second), True, {}, 2),
        ("reset", {"x": 1}),
    ]
    with pytest.raises(ValueError, match="no method for channel 'jobs.other'"):
        Counter(Message({}, "jobs.other", layer))


def test_route_class_and_as_route_route_to_the_class(layer, reply) -> None:
    class Room(WebsocketConsumer):
        prefix = "room"

        def connection_groups(self, room, **kwargs):
            return [f"{self.prefix}-{room}"]

    router = Router(
        [
            Room.as_route(path=r"^/vip/(?P<room>\w+)/$", attrs={"prefix": "vip"}),
            route_class(Room, path=r"^/chat/(?P<room>\w+)/$"),
        ]
    )
    assert router.channel_names() == set(WebsocketConsumer.method_mapping)
    for path, group in (("/chat/lobby/", "room-lobby"), ("/vip/lounge/", "vip-lounge")):
        consumer, kwargs = router.match(connect(layer, reply, path=path))
        run(consumer, connect(layer, reply, path=path), **kwargs)
        assert members(layer, group) == [reply]


# -- WebsocketConsumer ---------------------------------------------------------------------


class Chat(WebsocketConsumer):
    events: list[Any] = []

    def connection_groups(self, room, **kwargs):
        return [f"chat-{room}", "everyone"]

    def receive(self, text=None, bytes=None, **kwargs):
        self.events.append((self.path, text, bytes, kwargs))
        if text == "close":
            self.close()
        elif text is not None:
            self.send(text=f"echo:{text}")
            self.group_send(f"chat-{kwargs['room']}", text=text)
        else:
            self.send(bytes=bytes[::-1], close=True)

    def disconnect(self, message, **kwargs):
        self.events.append(("gone", message["code"]))


def test_connect_accepts_and_joins_groups_disconnect_leaves_them(layer, reply) -> None:
    Chat.events.clear()
    other = f"websocket.send!{uuid.uuid4().hex}"
    assert sent(run(Chat, connect(layer, reply), room="lobby"), reply) == [{"accept": True}]
    run(Chat, connect(layer, other), room="lobby")
    assert members(layer, "chat-lobby") == members(layer, "everyone") == [reply, other]
    assert run(Chat, disconnect(layer, reply), room="lobby").held == []
    assert members(layer, "chat-lobby") == members(layer, "everyone") == [other]
    assert Chat.events == [("gone", 1000)]


def test_receive_gets_text_or_bytes_and_sends_to_the_reply_channel(layer, reply) -> None:
    Chat.events.clear()
    sends = run(Chat, receive(layer, reply, text="hi"), room="lobby")
    assert sent(sends, reply) == [{"text": "echo:hi"}]
    assert sent(sends, "chat-lobby", group=True) == [{"text": "hi"}]
    sends = run(Chat, receive(layer, reply, bytes=b"abc"), room="lobby")
    assert sent(sends, reply) == [{"bytes": b"cba", "close": True}]
    sends = run(Chat, receive(layer, reply, text="close"), room="lobby")
    assert sent(sends, reply) == [{"close": True}]
    assert Chat.events[:2] == [
        ("/chat/lobby/", "hi", None, {"room": "lobby"}),
        ("/chat/lobby/", None, b"abc", {"room": "lobby"}),
    ]


def test_groups_attribute_and_connection_groups_without_kwargs(layer, reply) -> None:
    class Fixed(WebsocketConsumer):
        groups = ["news"]

    class Old(WebsocketConsumer):
        def connection_groups(self):  # Channels 1.0's documented form: no kwargs
            return ["old"]

    run(Fixed, connect(layer, reply), room="x")
    run(Old, connect(layer, reply), room="x")
    assert members(layer, "news") == [reply] and members(layer, "old") == [reply]
    run(Old, disconnect(layer, reply), room="x")
    assert members(layer, "old") == []


def test_a_connect_override_may_refuse_and_send_needs_a_frame(layer, reply) -> None:
    class Refuses(WebsocketConsumer):
        def connect(self, message, **kwargs):
            self.close(4003)

    assert sent(run(Refuses, connect(layer, reply)), reply) == [{"close": 4003}]
    with pytest.raises(ValueError, match="needs text or bytes"):
        run(
            type("Empty", (WebsocketConsumer,), {"receive": lambda self, **kw: self.send()}),
            receive(layer, reply, text="x"),
        )


def test_group_send_outside_a_consumer_goes_out_at_once(layer) -> None:
    default = channel_layers["default"]
    async_to_sync(default.group_add)("ticker", "ticker.inbox")
    WebsocketConsumer.group_send("ticker", text="tick", close=True)
    JsonWebsocketConsumer.group_send("ticker", {"n": 1})
    assert async_to_sync(default.receive)("ticker.inbox") == {"text": "tick", "close": True}
    assert async_to_sync(default.receive)("ticker.inbox") == {"text": '{"n": 1}'}


# -- JsonWebsocketConsumer -----------------------------------------------------------------


class Calc(JsonWebsocketConsumer):
    def receive(self, content, **kwargs):
        if content.get("op") == "bye":
            self.send({"bye": True}, close=True)
        else:
            self.send({"sum": sum(content["args"]), "room": kwargs.get("room")})
            self.group_send("calc", {"seen": content["args"]})


def test_json_consumer_decodes_and_encodes(layer, reply) -> None:
    sends = run(Calc, receive(layer, reply, text='{"args": [1, 2, 3]}'), room="r")
    assert sent(sends, reply) == [{"text": json.dumps({"sum": 6, "room": "r"})}]
    assert sent(sends, "calc", group=True) == [{"text": json.dumps({"seen": [1, 2, 3]})}]
    sends = run(Calc, receive(layer, reply, text='{"op": "bye"}'))
    assert sent(sends, reply) == [{"text": '{"bye": true}', "close": True}]
    with pytest.raises(ValueError, match="without text"):
        run(Calc, receive(layer, reply, bytes=b"{}"))


class Upper(Calc):
    decode_json = classmethod(lambda cls, text: {"args": [int(x) for x in text.split(",")]})
    encode_json = classmethod(lambda cls, content: json.dumps(content, sort_keys=True).upper())


def test_json_encoding_can_be_overridden(layer, reply) -> None:
    sends = run(Upper, receive(layer, reply, text="4,5"))
    assert sent(sends, reply) == [{"text": '{"ROOM": NULL, "SUM": 9}'}]


# -- WebsocketMultiplexer ------------------------------------------------------------------


def test_multiplexer_wraps_payloads_in_their_stream(layer, reply) -> None:
    message = connect(layer, reply)
    with held_sends() as sends:
        multiplexer = WebsocketMultiplexer("prices", message.reply_channel)
        multiplexer.send({"eur": 1.5})
        WebsocketMultiplexer.group_send("watchers", "prices", {"usd": 1}, close=True)
    assert frames(sends, reply) == [{"stream": "prices", "payload": {"eur": 1.5}}]
    [group_message] = sent(sends, "watchers", group=True)
    assert group_message["close"] is True
    assert json.loads(group_message["text"]) == {"stream": "prices", "payload": {"usd": 1}}


# -- WebsocketDemultiplexer: consumers (Channels 1.1) --------------------------------------


class Echo(JsonWebsocketConsumer):
    log: list[Any] = []

    def connection_groups(self, **kwargs):
        return ["echoers"]

    def connect(self, message, multiplexer, **kwargs):
        self.log.append(("connect", multiplexer.stream, kwargs))
        multiplexer.send({"status": "connected"})

    def receive(self, content, multiplexer, **kwargs):
        self.log.append(("receive", content, kwargs))
        multiplexer.send({"echo": content})
        self.send({"again": content})  # behind a demultiplexer: through the multiplexer too

    def disconnect(self, message, multiplexer, **kwargs):
        self.log.append(("disconnect", multiplexer.stream))


class Quiet(JsonWebsocketConsumer):
    def receive(self, content, multiplexer=None, **kwargs):
        multiplexer.send({"quiet": content["n"]})


class Streams(WebsocketDemultiplexer):
    consumers = {"echo": Echo, "quiet": Quiet}

    def connection_groups(self, **kwargs):
        return ["streams"]


def test_demultiplexer_connects_every_stream_after_accepting(layer, reply) -> None:
    Echo.log.clear()
    sends = run(Streams, connect(layer, reply), room="lobby")
    assert sent(sends, reply)[0] == {"accept": True}
    assert {"accept": True} not in sent(sends, reply)[1:]  # accepted once, by the demultiplexer
    assert frames(sends, reply) == [{"stream": "echo", "payload": {"status": "connected"}}]
    assert Echo.log == [("connect", "echo", {"room": "lobby"})]
    assert members(layer, "streams") == [reply]
    assert members(layer, "echoers") == [reply]  # the stream consumer's own groups


def test_demultiplexer_hands_each_payload_to_its_stream(layer, reply) -> None:
    Echo.log.clear()
    frame = json.dumps({"stream": "echo", "payload": {"hello": "world"}})
    sends = run(Streams, receive(layer, reply, text=frame), room="lobby")
    assert frames(sends, reply) == [
        {"stream": "echo", "payload": {"echo": {"hello": "world"}}},
        {"stream": "echo", "payload": {"again": {"hello": "world"}}},
    ]
    assert Echo.log == [("receive", {"hello": "world"}, {"room": "lobby"})]
    frame = json.dumps({"stream": "quiet", "payload": {"n": 7}})
    sends = run(Streams, receive(layer, reply, text=frame))
    assert frames(sends, reply) == [{"stream": "quiet", "payload": {"quiet": 7}}]


def test_demultiplexer_disconnects_every_stream(layer, reply) -> None:
    Echo.log.clear()
    run(Streams, connect(layer, reply))
    Echo.log.clear()
    sends = run(Streams, disconnect(layer, reply))
    assert sends.held == []
    assert Echo.log == [("disconnect", "echo")]
    assert members(layer, "streams") == [] and members(layer, "echoers") == []


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        ({"stream": "nope", "payload": {}}, r"Invalid multiplexed frame received \(stream not"),
        ({"payload": {}}, "no stream"),
        ({"stream": "echo", "payload": [1]}, "payload that is not an object"),
    ],
)
def test_demultiplexer_refuses_frames_it_cannot_route(layer, reply, frame, error) -> None:
    with pytest.raises(ValueError, match=error):
        run(Streams, receive(layer, reply, text=json.dumps(frame)))


def test_a_raw_consumer_behind_a_demultiplexer_must_use_its_multiplexer(layer, reply) -> None:
    class Raw(WebsocketConsumer):
        def receive(self, text=None, bytes=None, **kwargs):
            self.send(text=text)

    class Demux(WebsocketDemultiplexer):
        consumers = {"raw": Raw}

    frame = json.dumps({"stream": "raw", "payload": {"a": 1}})
    with pytest.raises(SendNotAvailableOnDemultiplexer):
        run(Demux, receive(layer, reply, text=frame))


def test_demultiplexer_sends_on_a_stream_itself(layer, reply) -> None:
    class Demux(WebsocketDemultiplexer):
        def connect(self, message, **kwargs):
            super().connect(message, **kwargs)
            self.send("hello", {"n": 1})
            self.group_send("demuxed", "hello", {"n": 2})

    sends = run(Demux, connect(layer, reply))
    assert sent(sends, reply)[0] == {"accept": True}
    assert frames(sends, reply) == [{"stream": "hello", "payload": {"n": 1}}]
    [group_message] = sent(sends, "demuxed", group=True)
    assert json.loads(group_message["text"]) == {"stream": "hello", "payload": {"n": 2}}
    assert Demux.encode("s", {"x": 1}) == WebsocketMultiplexer.encode("s", {"x": 1})


# -- WebsocketDemultiplexer: mapping (Channels 1.0) ----------------------------------------


class Mapped(WebsocketDemultiplexer):
    mapping = {"intval": "binding.intval", "stats": "internal.stats"}


def test_mapping_forwards_the_payload_and_reply_channel(layer, reply) -> None:
    assert sent(run(Mapped, connect(layer, reply)), reply) == [{"accept": True}]
    frame = json.dumps({"stream": "intval", "payload": {"action": "update", "pk": 3}})
    sends = run(Mapped, receive(layer, reply, text=frame))
    assert sends.held[0].layer is layer
    assert sent(sends, "binding.intval") == [{"action": "update", "pk": 3, "reply_channel": reply}]
    with pytest.raises(ValueError, match="stream not mapped"):
        run(Mapped, receive(layer, reply, text=json.dumps({"stream": "x", "payload": {}})))


def test_a_mapped_channel_is_consumed_by_its_route(layer, reply) -> None:
    got: list[dict[str, Any]] = []

    def stats(message):
        got.append(message.content)
        message.reply_channel.send(Mapped.encode("stats", {"users": 3}))

    frame = json.dumps({"stream": "stats", "payload": {"ask": "users"}})
    [held] = run(Mapped, receive(layer, reply, text=frame)).held
    forwarded = Message(held.content, held.target, layer)
    consumer, kwargs = Router([route("internal.stats", stats)]).match(forwarded)
    sends = run(consumer, forwarded, **kwargs)
    assert got == [{"ask": "users", "reply_channel": reply}]
    assert frames(sends, reply) == [{"stream": "stats", "payload": {"users": 3}}]


# -- session, user and ordering attributes -------------------------------------------------


def test_channel_session_attribute_keeps_state_between_messages(layer, reply) -> None:
    class Tally(WebsocketConsumer):
        channel_session = True

        def connect(self, message, **kwargs):
            message.channel_session["count"] = 0
            super().connect(message, **kwargs)

        def receive(self, text=None, bytes=None, **kwargs):
            self.message.channel_session["count"] += 1
            self.send(text=str(self.message.channel_session["count"]))

    run(Tally, connect(layer, reply))
    assert sent(run(Tally, receive(layer, reply, text="a")), reply) == [{"text": "1"}]
    assert sent(run(Tally, receive(layer, reply, text="b", order=2)), reply) == [{"text": "2"}]


class WhoAmI(JsonWebsocketConsumer):
    def connect(self, message, **kwargs):
        super().connect(message, **kwargs)
        self.send({"user": message.user.username, "http": hasattr(message, "http_session")})

    def receive(self, content, **kwargs):
        http = getattr(self.message, "http_session", None)
        self.send({"user": self.message.user.username, "http": http is not None})


def _logged_in() -> tuple[User, str]:
    user = User.objects.create_user(username=f"u{uuid.uuid4().hex[:12]}", password="pw")
    client = Client()
    client.force_login(user)
    return user, client.cookies["sessionid"].value


@pytest.mark.parametrize(
    ("attribute", "http_later"), [("http_user", False), ("http_user_and_session", True)]
)
def test_http_user_attributes_carry_the_user_to_later_messages(
    layer, reply, attribute, http_later
) -> None:
    consumer = type("Who", (WhoAmI,), {attribute: True})
    user, key = _logged_in()
    cookie = [[b"host", b"testserver"], [b"cookie", f"sessionid={key}".encode()]]
    sends = run(consumer, connect(layer, reply, headers=cookie))
    assert frames(sends, reply) == [{"user": user.username, "http": True}]
    sends = run(consumer, receive(layer, reply, text="{}"))
    assert frames(sends, reply) == [{"user": user.username, "http": http_later}]


def test_channel_session_user_attribute_gives_message_user(layer, reply) -> None:
    consumer = type("Who", (WhoAmI,), {"channel_session_user": True})
    sends = run(consumer, receive(layer, reply, text="{}"))
    assert frames(sends, reply) == [{"user": "", "http": False}]  # nobody logged in


class Ordered(WebsocketConsumer):
    def receive(self, text=None, bytes=None, **kwargs):
        self.send(text=text)


def test_ordering_attributes_put_early_messages_back(layer, reply) -> None:
    strict = type("Strict", (Ordered,), {"strict_ordering": True})
    run(strict, connect(layer, reply))
    with pytest.raises(ConsumeLater):
        run(strict, receive(layer, reply, order=2, text="2"))
    for order in (1, 2):
        sends = run(strict, receive(layer, reply, order=order, text=str(order)))
        assert sent(sends, reply) == [{"text": str(order)}]

    slight, other = type("Slight", (Ordered,), {"slight_ordering": True}), f"{reply}.b"
    with pytest.raises(ConsumeLater):
        run(slight, receive(layer, other, order=1, text="early"))
    connected = connect(layer, other)
    run(slight, connected)
    assert connected.channel_session[NEXT_ORDER_KEY] == 1  # only connect had to come first
    assert sent(run(slight, receive(layer, other, order=5, text="5")), other) == [{"text": "5"}]
