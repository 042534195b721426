"""The chat's tests: python manage.py test chat

Communicators drive the site's ASGI application in-process; the live-server test case serves it
on Switchboard's server for real WebSocket clients. Both send the Origin header of the site's
own pages, so the AllowedHostsOriginValidator of chatsite/asgi.py lets them in.
"""

import json
import urllib.request

from django.test import TestCase
from websockets.exceptions import InvalidStatus

from chatsite.asgi import application
from switchboard.testing import SwitchboardLiveServerTestCase, WebsocketCommunicator


class ChatConsumerTests(TestCase):
    async def join(self, room):
        """A client in ``room``, subscribed to its messages; returns it and its user name."""
        client = WebsocketCommunicator(application, f"/ws/chat/{room}/")
        connected, _subprotocol = await client.connect()
        self.assertTrue(connected)
        welcome = await client.receive_json_from()
        self.assertEqual(welcome["type"], "welcome")
        await client.send_json_to({"sb": "sub", "topic": f"chat_{room}"})
        self.assertEqual((await client.receive_json_from())["sb"], "subscribed")
        return client, welcome["username"]

    async def test_a_message_reaches_everyone_in_the_room(self):
        alice, alice_name = await self.join("lobby")
        bob, _ = await self.join("lobby")

        await alice.send_json_to({"message": "  hello  "})
        for member in (alice, bob):
            frame = await member.receive_json_from()
            self.assertEqual(frame["sb"], "pub")
            self.assertEqual(frame["topic"], "chat_lobby")
            self.assertEqual(frame["data"]["message"], "hello")
            self.assertEqual(frame["data"]["username"], alice_name)

        await alice.disconnect()
        await bob.disconnect()

    async def test_an_empty_message_is_refused(self):
        client, _ = await self.join("lobby")
        await client.send_json_to({"message": "   "})
        self.assertEqual((await client.receive_json_from())["type"], "error")
        await client.disconnect()

    async def test_a_page_of_another_site_is_refused(self):
        client = WebsocketCommunicator(application, "/ws/chat/lobby/", origin="http://evil.example")
        connected, _code = await client.connect()
        self.assertFalse(connected)  # a real server answers the handshake with HTTP 403

    async def test_a_newcomer_sees_who_is_online_and_the_last_messages(self):
        alice, alice_name = await self.join("history")
        await alice.send_json_to({"message": "first"})
        await alice.receive_json_from()  # alice's own message

        bob = WebsocketCommunicator(application, "/ws/chat/history/")
        await bob.connect()
        bob_name = (await bob.receive_json_from())["username"]
        await bob.send_json_to({"sb": "presence", "topic": "chat_history"})
        state = await bob.receive_json_from()
        self.assertEqual(state["sb"], "presence_state")
        self.assertEqual(set(state["state"]), {alice_name, bob_name})  # one key per user

        await bob.send_json_to({"sb": "sub", "topic": "chat_history", "history": 50})
        self.assertEqual((await bob.receive_json_from())["sb"], "subscribed")
        replayed = await bob.receive_json_from()
        self.assertEqual(replayed["data"]["message"], "first")

        await alice.disconnect()
        await bob.disconnect()

    async def test_a_client_that_reconnects_gets_what_it_missed(self):
        alice, _ = await self.join("recovery")
        await alice.send_json_to({"message": "before"})
        last = await alice.receive_json_from()  # the last message alice showed
        await alice.disconnect()

        bob, _ = await self.join("recovery")
        await bob.send_json_to({"message": "while you were away"})
        await bob.receive_json_from()

        alice = WebsocketCommunicator(application, "/ws/chat/recovery/")
        await alice.connect()
        await alice.receive_json_from()  # welcome
        # What switchboard.js sends on every reconnect: the position of the last message shown.
        position = {"epoch": last["epoch"], "offset": last["offset"]}
        await alice.send_json_to({"sb": "sub", "topic": "chat_recovery", **position})
        subscribed = await alice.receive_json_from()
        self.assertIs(subscribed["recovered"], True)
        missed = await alice.receive_json_from()
        self.assertEqual(missed["data"]["message"], "while you were away")
        self.assertEqual(missed["offset"], last["offset"] + 1)

        await alice.disconnect()
        await bob.disconnect()


class ChatLiveServerTests(SwitchboardLiveServerTestCase):
    def test_the_room_page_and_two_clients_chatting(self):
        with urllib.request.urlopen(f"{self.live_server_url}/chat/lobby/") as page:
            self.assertIn('<script id="room-name" type="application/json">', page.read().decode())

        with (
            self.websocket_connect("/ws/chat/lobby/") as alice,
            self.websocket_connect("/ws/chat/lobby/") as bob,
        ):
            for client in (alice, bob):
                self.assertEqual(json.loads(client.recv(timeout=5))["type"], "welcome")
                client.send(json.dumps({"sb": "sub", "topic": "chat_lobby"}))
                self.assertEqual(json.loads(client.recv(timeout=5))["sb"], "subscribed")
            alice.send(json.dumps({"message": "hi bob"}))
            frame = json.loads(bob.recv(timeout=5))
            self.assertEqual(frame["data"]["message"], "hi bob")

    def test_a_page_of_another_site_is_refused(self):
        with self.assertRaises(InvalidStatus) as refused:
            self.websocket_connect("/ws/chat/lobby/", origin="http://evil.example")
        self.assertEqual(refused.exception.response.status_code, 403)
