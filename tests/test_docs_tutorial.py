"""The tests the tutorial and the testing guide show (docs/ includes the marked sections).

They run against the real chat example in examples/chat (and the tutorial's first consumer in
tests/docs_samples/), so the documented code and tests stay true. The chat speaks the
protocol of switchboard.realtime: ``{"sb": ...}`` control frames around the application's JSON.
"""

from __future__ import annotations

import sys
from pathlib import Path

from django.test import override_settings
from django.urls import re_path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples" / "chat"))

# --8<-- [start:communicator]
import json

from websockets.sync.client import connect

from chat.routing import websocket_urlpatterns
from switchboard.routing import ProtocolTypeRouter, URLRouter
from switchboard.testing import SwitchboardLiveServerTestCase, WebsocketCommunicator

application = ProtocolTypeRouter({"websocket": URLRouter(websocket_urlpatterns)})


async def join(room: str) -> tuple[WebsocketCommunicator, str]:
    """A client in ``room``, subscribed to its messages; returns it and its user name."""
    client = WebsocketCommunicator(application, f"/ws/chat/{room}/")
    connected, _subprotocol = await client.connect()
    assert connected
    welcome = await client.receive_json_from()
    assert welcome["type"] == "welcome" and welcome["room"] == room
    await client.send_json_to({"sb": "sub", "topic": f"chat_{room}"})
    assert (await client.receive_json_from())["sb"] == "subscribed"
    return client, welcome["username"]


async def test_a_message_reaches_everyone_in_the_room():
    alice, alice_name = await join("lobby")
    bob, _ = await join("lobby")

    await alice.send_json_to({"message": "  hello  "})
    for member in (alice, bob):
        frame = await member.receive_json_from()
        assert frame["sb"] == "pub" and frame["topic"] == "chat_lobby"
        assert frame["data"]["message"] == "hello"
        assert frame["data"]["username"] == alice_name

    await alice.disconnect()
    await bob.disconnect()


async def test_an_empty_message_is_refused():
    client, _ = await join("lobby")
    await client.send_json_to({"message": "   "})
    assert (await client.receive_json_from())["type"] == "error"
    await client.disconnect()


async def test_a_newcomer_sees_who_is_online_and_the_last_messages():
    alice, alice_name = await join("history")
    await alice.send_json_to({"message": "first"})
    await alice.receive_json_from()  # alice's own message

    bob = WebsocketCommunicator(application, "/ws/chat/history/")
    await bob.connect()
    bob_name = (await bob.receive_json_from())["username"]
    await bob.send_json_to({"sb": "presence", "topic": "chat_history"})
    state = await bob.receive_json_from()
    assert state["sb"] == "presence_state"
    assert set(state["state"]) == {alice_name, bob_name}  # one key per user

    await bob.send_json_to({"sb": "sub", "topic": "chat_history", "history": 50})
    assert (await bob.receive_json_from())["sb"] == "subscribed"
    replayed = await bob.receive_json_from()
    assert replayed["sb"] == "pub" and replayed["data"]["message"] == "first"

    await alice.disconnect()
    await bob.disconnect()


async def test_a_client_that_reconnects_gets_what_it_missed():
    alice, _ = await join("recovery")
    await alice.send_json_to({"message": "before"})
    last = await alice.receive_json_from()  # the last message alice showed
    await alice.disconnect()

    bob, _ = await join("recovery")
    await bob.send_json_to({"message": "while you were away"})
    await bob.receive_json_from()

    alice = WebsocketCommunicator(application, "/ws/chat/recovery/")
    await alice.connect()
    await alice.receive_json_from()  # welcome
    # What switchboard.js sends on every reconnect: the position of the last message shown.
    position = {"epoch": last["epoch"], "offset": last["offset"]}
    await alice.send_json_to({"sb": "sub", "topic": "chat_recovery", **position})
    subscribed = await alice.receive_json_from()
    assert subscribed["sb"] == "subscribed" and subscribed["recovered"] is True
    missed = await alice.receive_json_from()
    assert missed["data"]["message"] == "while you were away"
    assert missed["offset"] == last["offset"] + 1

    await alice.disconnect()
    await bob.disconnect()


# --8<-- [end:communicator]


# --8<-- [start:live]
class ChatLiveServerTests(SwitchboardLiveServerTestCase):
    def test_two_clients_chat_over_real_websockets(self):
        url = f"{self.live_server_ws_url}/ws/chat/lobby/"
        with connect(url) as alice, connect(url) as bob:
            for client in (alice, bob):
                assert json.loads(client.recv(timeout=5))["type"] == "welcome"
                client.send(json.dumps({"sb": "sub", "topic": "chat_lobby"}))
                assert json.loads(client.recv(timeout=5))["sb"] == "subscribed"
            alice.send(json.dumps({"message": "hi bob"}))
            frame = json.loads(bob.recv(timeout=5))
            assert frame["sb"] == "pub" and frame["data"]["message"] == "hi bob"


# --8<-- [end:live]


# The guide's class relies on settings.ASGI_APPLICATION; the suite's settings have none.
ChatLiveServerTests = override_settings(ASGI_APPLICATION="tests.test_docs_tutorial.application")(
    ChatLiveServerTests
)


# The tutorial's first consumer (step 2, before presence and history): the same room, plain
# group messages and no control frames.
from tests.docs_samples.first_consumers import ChatConsumer as FirstChatConsumer  # noqa: E402

first_application = URLRouter(
    [re_path(r"^ws/chat/(?P<room>[A-Za-z0-9_-]{1,64})/$", FirstChatConsumer.as_asgi())]
)


async def test_the_first_consumer_relays_messages_to_its_room():
    alice = WebsocketCommunicator(first_application, "/ws/chat/lobby/")
    bob = WebsocketCommunicator(first_application, "/ws/chat/lobby/")
    elsewhere = WebsocketCommunicator(first_application, "/ws/chat/elsewhere/")
    for client in (alice, bob, elsewhere):
        assert (await client.connect())[0]
    welcome = await alice.receive_json_from()
    assert welcome["type"] == "welcome" and welcome["room"] == "lobby"
    await bob.receive_json_from()
    await elsewhere.receive_json_from()

    await alice.send_json_to({"message": " hi "})
    for member in (alice, bob):
        event = await member.receive_json_from()
        assert event["type"] == "message" and event["message"] == "hi"
        assert event["username"] == welcome["username"]
        assert event["timestamp"].endswith("+00:00")
    assert await elsewhere.receive_nothing()  # another room hears nothing

    await alice.send_json_to({"message": ""})
    assert (await alice.receive_json_from())["type"] == "error"
    for client in (alice, bob, elsewhere):
        await client.disconnect()
