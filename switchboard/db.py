"""Database access from async code: run sync ORM work in a thread with fresh connections."""

from __future__ import annotations

from typing import Any

from asgiref.sync import SyncToAsync
from django.db import connections

__all__ = ["DatabaseSyncToAsync", "database_sync_to_async"]


def _close_old_connections() -> None:
    """Django's ``close_old_connections``, except for connections inside an atomic block.

    Closing a connection in the middle of a transaction throws the transaction away and makes
    Django refuse every later query on it. That is what would happen under Django's TestCase,
    whose test transaction is open on the very thread thread-sensitive calls run on; whoever
    opened the block cleans up once it ends.
    """
    for conn in connections.all(initialized_only=True):
        if not conn.in_atomic_block:
            conn.close_if_unusable_or_obsolete()


class DatabaseSyncToAsync(SyncToAsync):
    """SyncToAsync that drops stale or broken connections around the call.

    Long-lived consumers would otherwise keep using a connection past CONN_MAX_AGE or after
    the database closed it, since no request/response cycle triggers Django's cleanup.
    """

    def thread_handler(self, loop: Any, *args: Any, **kwargs: Any) -> Any:
        _close_old_connections()
        try:
            return super().thread_handler(loop, *args, **kwargs)
        finally:
            _close_old_connections()


# Usable bare (``@database_sync_to_async``) or called (``database_sync_to_async(f)``).
database_sync_to_async = DatabaseSyncToAsync
