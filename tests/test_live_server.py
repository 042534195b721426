"""SwitchboardLiveServerTestCase: real server thread, real HTTP and WebSocket clients."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.test import override_settings
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from switchboard.testing import ChannelsLiveServerTestCase, SwitchboardLiveServerTestCase

STATIC_DIR = Path(__file__).parent / "sites" / "live" / "static"
live_settings = override_settings(
    ASGI_APPLICATION="tests.sites.live.app.application",
    ROOT_URLCONF="tests.sites.live.urls",
    STATIC_URL="/static/",
    STATICFILES_DIRS=[STATIC_DIR],
    # Not in tests/sites/default/settings.py: prove the test case allows its own host.
    ALLOWED_HOSTS=["testserver"],
)


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@live_settings
class LiveServerTests(SwitchboardLiveServerTestCase):
    def test_urls_point_at_the_running_server(self):
        port = int(self.live_server_url.rsplit(":", 1)[1])
        assert self.live_server_url == f"http://127.0.0.1:{port}"
        assert self.live_server_ws_url == f"ws://127.0.0.1:{port}"
        assert type(self).live_server_url == self.live_server_url  # usable on the class too
        socket.create_connection(("127.0.0.1", port), timeout=5).close()

    def test_django_view_over_http(self):
        status, body = _get(f"{self.live_server_url}/hello/")
        port = self.live_server_url.rsplit(":", 1)[1]
        assert status == 200
        assert body == f"hello from django via 127.0.0.1:{port}".encode()
        assert _get(f"{self.live_server_url}/nowhere/")[0] == 404

    def test_websocket_echo(self):
        with connect(f"{self.live_server_ws_url}/ws/echo/", open_timeout=10) as ws:
            ws.send("ping")
            assert ws.recv(timeout=10) == "echo: ping"
            ws.send(b"\x01\x02\x03")
            assert ws.recv(timeout=10) == b"\x03\x02\x01"

    def test_websocket_connect_sends_the_live_servers_origin_unless_told_otherwise(self):
        """A browser's handshake carries its page's Origin (RFC 6455 section 4.1, point 8), and
        AllowedHostsOriginValidator refuses one without (as Channels' does): the test case's
        client is a page of the live server unless the test says otherwise."""
        with self.websocket_connect("/ws/origin/") as ws:
            assert json.loads(ws.recv(timeout=10)) == {"origin": self.live_server_url}
        for origin in (None, "http://evil.example"):
            with pytest.raises(InvalidStatus) as refused:
                self.websocket_connect("/ws/origin/", origin=origin)
            assert refused.value.response.status_code == 403
        with override_settings(ALLOWED_HOSTS=["*"]):  # the validator lets anything through
            for origin in (None, "http://elsewhere.example"):
                with self.websocket_connect("/ws/origin/", origin=origin) as ws:
                    assert json.loads(ws.recv(timeout=10)) == {"origin": origin}

    def test_consumer_sees_rows_the_test_wrote_and_vice_versa(self):
        Group.objects.create(name="live-alpha")
        Group.objects.create(name="live-beta")
        Group.objects.create(name="other")
        with connect(f"{self.live_server_ws_url}/ws/groups/", open_timeout=10) as ws:
            ws.send(json.dumps({"op": "lookup", "prefix": "live-"}))
            assert json.loads(ws.recv(timeout=10)) == {"names": ["live-alpha", "live-beta"]}
            ws.send(json.dumps({"op": "create", "name": "live-consumer"}))
            created = json.loads(ws.recv(timeout=10))["created"]
        assert Group.objects.get(pk=created).name == "live-consumer"
        # Other tests of the suite may have left groups behind: look at this test's only.
        status, body = _get(f"{self.live_server_url}/groups/?prefix=live-")
        assert status == 200
        assert json.loads(body)["groups"] == ["live-alpha", "live-beta", "live-consumer"]

    def test_static_files_are_served(self):
        status, body = _get(f"{self.live_server_url}/static/live-check.txt")
        assert (status, body) == (200, (STATIC_DIR / "live-check.txt").read_bytes())
        assert _get(f"{self.live_server_url}/static/missing.txt")[0] == 404


@live_settings
class NoStaticTests(ChannelsLiveServerTestCase):
    serve_static = False

    def test_static_files_are_left_to_the_application(self):
        assert ChannelsLiveServerTestCase is SwitchboardLiveServerTestCase
        assert _get(f"{self.live_server_url}/static/live-check.txt")[0] == 404
        assert _get(f"{self.live_server_url}/hello/")[0] == 200


@override_settings(ROOT_URLCONF="tests.sites.live.urls")
class DjangoApplicationTests(SwitchboardLiveServerTestCase):
    """Without ASGI_APPLICATION (and STATIC_URL) the server runs Django's own ASGI handler."""

    def test_plain_django_project(self):
        assert not getattr(settings, "ASGI_APPLICATION", None)
        assert not settings.STATIC_URL
        status, body = _get(f"{self.live_server_url}/hello/")
        assert status == 200 and body.startswith(b"hello from django")


def _run_case(case: type[unittest.TestCase]) -> unittest.TestResult:
    # unittest's own suite runs setUpClass, the tests, tearDownClass and the class cleanups.
    result = unittest.TestResult()
    unittest.TestSuite([case("test_it")]).run(result)
    return result


def test_server_stops_and_settings_are_restored_after_the_class():
    seen: dict[str, Any] = {"client": contextlib.ExitStack()}

    @live_settings
    class Case(SwitchboardLiveServerTestCase):
        def test_it(self):
            seen["port"] = int(self.live_server_url.rsplit(":", 1)[1])
            seen["allowed"] = list(settings.ALLOWED_HOSTS)
            # Left open on purpose: stopping the server must close it, not wait on it.
            ws = seen["client"].enter_context(
                connect(f"{self.live_server_ws_url}/ws/echo/", open_timeout=10)
            )
            seen["ws"] = ws
            ws.send("left open")
            assert ws.recv(timeout=10) == "echo: left open"

    before = list(settings.ALLOWED_HOSTS)
    started = time.monotonic()
    result = _run_case(Case)
    assert time.monotonic() - started < 4  # under the 5 s drain: the socket was closed
    assert result.wasSuccessful(), result.errors + result.failures
    assert seen["allowed"] == ["testserver", "127.0.0.1"]
    ws = seen["ws"]
    try:
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        assert ws.close_code == 1001  # "going away": the server left, not the application
    finally:
        seen["client"].close()
    assert list(settings.ALLOWED_HOSTS) == before
    try:
        socket.create_connection(("127.0.0.1", seen["port"]), timeout=2).close()
    except ConnectionRefusedError:
        pass
    else:
        raise AssertionError("the live server still accepts connections after tearDownClass")
    try:
        Case.live_server_url  # noqa: B018 - the property itself is what is tested
    except RuntimeError as error:
        assert "only runs between setUpClass and tearDownClass" in str(error)
    else:
        raise AssertionError("live_server_url outside the class run should be an error")


def test_a_server_that_cannot_start_fails_the_class_cleanly():
    @override_settings(ASGI_APPLICATION="tests.sites.live.app.no_such_application")
    class Case(SwitchboardLiveServerTestCase):
        def test_it(self):
            raise AssertionError("must not run")

    before = list(settings.ALLOWED_HOSTS)
    result = _run_case(Case)
    assert not result.wasSuccessful() and not result.failures
    (_, traceback), *_ = result.errors
    assert "no_such_application" in traceback
    assert list(settings.ALLOWED_HOSTS) == before


def test_django_test_runner_with_the_in_memory_sqlite_test_database():
    # The server is a thread of the test process, so Django's default test database (shared
    # in-memory SQLite) works; a server in another process could never see it.
    root = Path(__file__).parent.parent
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.sites.live_inmemory.settings")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    completed = subprocess.run(
        [sys.executable, "-m", "django", "test", "tests.sites.live_inmemory.cases", "-v", "2"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    assert "Ran 2 tests" in output and "memorydb_default" in output, output
