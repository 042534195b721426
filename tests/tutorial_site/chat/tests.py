"""Run by ``manage.py test chat`` in a subprocess (tests/test_tutorial_project.py), as the
tutorial's readers would: the live-server test case serving ``mysite.asgi.application``."""

import json
import urllib.request

from websockets.sync.client import connect

from switchboard.testing import ChannelsLiveServerTestCase


class TutorialLiveServerTests(ChannelsLiveServerTestCase):
    def test_room_page_and_chat_message_between_two_sockets(self):
        with urllib.request.urlopen(f"{self.live_server_url}/chat/lobby/", timeout=10) as page:
            assert page.status == 200
            assert '<script id="room-name" type="application/json">"lobby"</script>' in (
                page.read().decode()
            )
        room = f"{self.live_server_ws_url}/ws/chat/lobby/"
        origin = self.live_server_url
        with (
            connect(room, origin=origin, open_timeout=10) as alice,
            connect(room, origin=origin, open_timeout=10) as bob,
        ):
            alice.send(json.dumps({"message": "hello from the live server"}))
            assert json.loads(bob.recv(timeout=10)) == {"message": "hello from the live server"}
            assert json.loads(alice.recv(timeout=10)) == {"message": "hello from the live server"}
