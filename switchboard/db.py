"""Database access from async code: run sync ORM work in a thread with fresh connections."""

from __future__ import annotations

from typing import Any

from asgiref.sync import SyncToAsync
from django.db import close_old_connections

__all__ = ["DatabaseSyncToAsync", "database_sync_to_async"]


class DatabaseSyncToAsync(SyncToAsync):
    """SyncToAsync that drops stale or broken connections around the call.

    Long-lived consumers would otherwise keep using a connection past CONN_MAX_AGE or after
    the database closed it, since no request/response cycle triggers Django's cleanup.
    """

    def thread_handler(self, loop: Any, *args: Any, **kwargs: Any) -> Any:
        close_old_connections()
        try:
            return super().thread_handler(loop, *args, **kwargs)
        finally:
            close_old_connections()


# Usable bare (``@database_sync_to_async``) or called (``database_sync_to_async(f)``).
database_sync_to_async = DatabaseSyncToAsync
