"""The tests the tutorial and the testing guide show (docs/ includes the marked sections).

They run against the real chat example in examples/chat, so the documented tests stay true.
"""

from __future__ import annotations

import sys
from pathlib import Path

from django.test import override_settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples" / "chat"))

# --8<-- [start:communicator]
import json

from websockets.sync.client import connect

from chat.routing import websocket_urlpatterns
from switchboard.routing import ProtocolTypeRouter, URLRouter
from switchboard.testing import SwitchboardLiveServerTestCase, WebsocketCommunicator

application = ProtocolTypeRouter({"websocket": URLRouter(websocket_urlpatterns)})


async def test_a_message_reaches_everyone_in_the_room():
    alice = WebsocketCommunicator(application, "/ws/chat/lobby/")
    bob = WebsocketCommunicator(application, "/ws/chat/lobby/")
    connected, _subprotocol = await alice.connect()
    assert connected
    assert (await bob.connect())[0]
    welcome = await alice.receive_json_from()
    assert welcome["type"] == "welcome" and welcome["room"] == "lobby"
    await bob.receive_json_from()  # bob's welcome

    await alice.send_json_to({"message": "  hello  "})
    for member in (alice, bob):
        event = await member.receive_json_from()
        assert event["type"] == "message"
        assert event["message"] == "hello"
        assert event["username"] == welcome["username"]

    await alice.disconnect()
    await bob.disconnect()


async def test_an_empty_message_is_refused():
    communicator = WebsocketCommunicator(application, "/ws/chat/lobby/")
    await communicator.connect()
    await communicator.receive_json_from()  # welcome
    await communicator.send_json_to({"message": "   "})
    assert (await communicator.receive_json_from())["type"] == "error"
    await communicator.disconnect()
# --8<-- [end:communicator]


# --8<-- [start:live]
class ChatLiveServerTests(SwitchboardLiveServerTestCase):
    def test_two_clients_chat_over_real_websockets(self):
        url = f"{self.live_server_ws_url}/ws/chat/lobby/"
        with connect(url) as alice, connect(url) as bob:
            assert json.loads(alice.recv(timeout=5))["type"] == "welcome"
            assert json.loads(bob.recv(timeout=5))["type"] == "welcome"
            alice.send(json.dumps({"message": "hi bob"}))
            assert json.loads(bob.recv(timeout=5))["message"] == "hi bob"
# --8<-- [end:live]


# The guide's class relies on settings.ASGI_APPLICATION; the suite's settings have none.
ChatLiveServerTests = override_settings(
    ASGI_APPLICATION="tests.test_docs_tutorial.application"
)(ChatLiveServerTests)
