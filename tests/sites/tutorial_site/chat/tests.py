"""Run by ``manage.py test chat`` in a subprocess (tests/test_tutorial_project.py), as the
tutorial's readers would: the live-server test case serving ``mysite.asgi.application``."""

import json
import urllib.request

from websockets.exceptions import InvalidStatus

from switchboard.testing import ChannelsLiveServerTestCase


class TutorialLiveServerTests(ChannelsLiveServerTestCase):
    def test_room_page_and_chat_message_between_two_sockets(self):
        with urllib.request.urlopen(f"{self.live_server_url}/chat/lobby/", timeout=10) as page:
            assert page.status == 200
            assert '<script id="room-name" type="application/json">"lobby"</script>' in (
                page.read().decode()
            )
        # The test case's client sends the live server's own Origin, which
        # AllowedHostsOriginValidator in mysite/asgi.py accepts.
        with (
            self.websocket_connect("/ws/chat/lobby/") as alice,
            self.websocket_connect("/ws/chat/lobby/") as bob,
        ):
            alice.send(json.dumps({"message": "hello from the live server"}))
            assert json.loads(bob.recv(timeout=10)) == {"message": "hello from the live server"}
            assert json.loads(alice.recv(timeout=10)) == {"message": "hello from the live server"}

    def test_a_socket_without_an_origin_or_from_another_site_is_refused(self):
        for origin in (None, "http://evil.example"):
            with self.assertRaises(InvalidStatus) as refused:
                self.websocket_connect("/ws/chat/lobby/", origin=origin)
            assert refused.exception.response.status_code == 403
