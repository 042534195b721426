"""Consumers using database_sync_to_async inside Django's TestCase keep the test transaction.

TestCase wraps every test in atomic blocks on the test thread's connection and rolls them back
afterwards. A communicator's database calls run on that same thread (asgiref sends
thread-sensitive sync code back to the thread blocked in async_to_sync), so closing "old"
connections there would close the test's own connection mid-transaction: Django then refuses
every later query and the test data is gone. Channels leaves the connection alone in tests;
here any connection inside an atomic block is left alone.
"""

from __future__ import annotations

from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.test import TestCase

from switchboard.db import database_sync_to_async
from switchboard.generic.websocket import AsyncWebsocketConsumer
from switchboard.testing import WebsocketCommunicator


def _group_names() -> list[str]:
    return sorted(Group.objects.filter(name__startswith="tc-").values_list("name", flat=True))


class Groups(AsyncWebsocketConsumer):
    """``add:<name>`` creates a group; anything else answers the group names."""

    async def connect(self):
        await self.accept()

    async def receive(self, text_data=None, bytes_data=None):
        if text_data.startswith("add:"):
            await database_sync_to_async(Group.objects.create)(name=text_data[4:])
        await self.send(",".join(await database_sync_to_async(_group_names)()))


async def _talk(*messages: str) -> list[str]:
    communicator = WebsocketCommunicator(Groups.as_asgi(), "/ws/groups/")
    connected, _ = await communicator.connect()
    assert connected
    replies = []
    for message in messages:
        await communicator.send_to(message)
        replies.append(await communicator.receive_from())
    await communicator.disconnect()
    return replies


def _transaction_state() -> tuple[bool, bool, bool]:
    return (connection.in_atomic_block, connection.needs_rollback, connection.is_usable())


class CommunicatorInTestCase(TestCase):
    @classmethod
    def setUpTestData(cls):
        Group.objects.create(name="tc-setup")

    async def test_async_test_method(self):
        replies = await _talk("list", "add:tc-consumer", "list")
        assert replies == ["tc-setup", "tc-consumer,tc-setup", "tc-consumer,tc-setup"]
        # Still inside the test's transaction, on a live connection that sees both rows.
        assert await sync_to_async(_transaction_state)() == (True, False, True)
        assert await sync_to_async(_group_names)() == ["tc-consumer", "tc-setup"]

    def test_sync_test_method_with_async_to_sync(self):
        assert async_to_sync(_talk)("add:tc-sync") == ["tc-setup,tc-sync"]
        assert _transaction_state() == (True, False, True)
        assert _group_names() == ["tc-setup", "tc-sync"]

    def test_rows_of_earlier_tests_were_rolled_back(self):
        # Whatever order the tests run in, only setUpTestData's row is ever visible at the start.
        assert _group_names() == ["tc-setup"]


def test_an_open_atomic_block_is_not_closed_under_it():
    # The same rule outside tests: sync code in a transaction calling async code that uses the
    # database on this thread must find its transaction intact afterwards.
    with transaction.atomic():
        Group.objects.create(name="tc-atomic")
        names = async_to_sync(database_sync_to_async(_group_names))()
        assert names == ["tc-atomic"]
        assert _transaction_state() == (True, False, True)
        assert Group.objects.filter(name="tc-atomic").exists()
        transaction.set_rollback(True)
    assert _group_names() == []
