"""Run by Django's test runner (not collected by pytest): see this package's __init__.py."""

import json
import urllib.request

from django.contrib.auth.models import Group
from django.db import connection
from websockets.sync.client import connect

from switchboard.testing import ChannelsLiveServerTestCase


class InMemoryDatabaseTests(ChannelsLiveServerTestCase):
    def test_server_shares_the_in_memory_database(self):
        assert connection.is_in_memory_db()
        Group.objects.create(name="mem-test")
        with connect(f"{self.live_server_ws_url}/ws/groups/", open_timeout=10) as ws:
            ws.send(json.dumps({"op": "lookup", "prefix": "mem-"}))
            assert json.loads(ws.recv(timeout=10)) == {"names": ["mem-test"]}
            ws.send(json.dumps({"op": "create", "name": "mem-consumer"}))
            json.loads(ws.recv(timeout=10))
        assert sorted(Group.objects.values_list("name", flat=True)) == ["mem-consumer", "mem-test"]
        with urllib.request.urlopen(f"{self.live_server_url}/groups/", timeout=10) as response:
            assert json.load(response) == {"groups": ["mem-consumer", "mem-test"]}

    def test_tables_are_flushed_between_tests(self):
        assert not Group.objects.exists()
        with connect(f"{self.live_server_ws_url}/ws/groups/", open_timeout=10) as ws:
            ws.send(json.dumps({"op": "lookup", "prefix": ""}))
            assert json.loads(ws.recv(timeout=10)) == {"names": []}
