"""database_sync_to_async: stale connections are dropped before and after the call."""

from __future__ import annotations

import time

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Group
from django.db import connection

from switchboard.db import database_sync_to_async


def _open_raw_connection():
    """Run a real query on the thread's connection and hand back the DB-API connection."""
    Group.objects.count()
    return connection.connection


def _close() -> None:
    connection.close()


@pytest.fixture
async def persistent_connections():
    # CONN_MAX_AGE > 0 keeps a healthy connection across calls, so the only thing that can
    # close it is close_old_connections() seeing it expired. Every thread's wrapper shares
    # this settings dict; reconnecting makes close_at follow the new age.
    original = connection.settings_dict["CONN_MAX_AGE"]
    connection.settings_dict["CONN_MAX_AGE"] = 600
    await sync_to_async(_close)()
    yield
    connection.settings_dict["CONN_MAX_AGE"] = original
    await sync_to_async(_close)()


async def test_healthy_persistent_connection_is_reused(persistent_connections):
    first = await database_sync_to_async(_open_raw_connection)()
    second = await database_sync_to_async(_open_raw_connection)()
    assert first is second


async def test_connection_expired_during_a_call_is_closed_after_it(persistent_connections):
    @database_sync_to_async
    def use_then_expire():
        raw = _open_raw_connection()
        connection.close_at = time.monotonic() - 1  # as if CONN_MAX_AGE ran out meanwhile
        return raw

    stale = await use_then_expire()
    # Looked at without another database_sync_to_async call: the close happened on the way out.
    assert await sync_to_async(lambda: connection.connection)() is None
    fresh = await database_sync_to_async(_open_raw_connection)()
    assert fresh is not stale
    with pytest.raises(Exception, match="closed"):
        stale.execute("SELECT 1")


async def test_connection_expired_before_a_call_is_replaced(persistent_connections):
    # Plain sync_to_async has no cleanup: it leaves an expired connection on the thread.
    def use_then_expire():
        raw = _open_raw_connection()
        connection.close_at = time.monotonic() - 1
        return raw

    stale = await sync_to_async(use_then_expire)()
    assert await sync_to_async(_open_raw_connection)() is stale

    fresh = await database_sync_to_async(_open_raw_connection)()
    assert fresh is not stale
    with pytest.raises(Exception, match="closed"):
        stale.execute("SELECT 1")


async def test_default_conn_max_age_closes_after_every_call():
    assert connection.settings_dict["CONN_MAX_AGE"] == 0  # the suite's settings leave the default
    first = await database_sync_to_async(_open_raw_connection)()
    second = await database_sync_to_async(_open_raw_connection)()
    assert first is not second


async def test_errors_propagate_and_the_connection_is_still_cleaned_up(persistent_connections):
    class Boom(Exception):
        pass

    @database_sync_to_async
    def fail():
        _open_raw_connection()
        connection.close_at = time.monotonic() - 1
        raise Boom("from the thread")

    with pytest.raises(Boom, match="from the thread"):
        await fail()
    assert await sync_to_async(lambda: connection.connection)() is None

    @database_sync_to_async
    def add(a, b=0):
        return a + b

    assert await add(2, b=3) == 5
