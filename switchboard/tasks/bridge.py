"""Running the stores' coroutines from synchronous code (``task.enqueue()`` in a view,
``result.refresh()`` in a shell, ``report_progress`` in a sync task's thread).

The layers keep their connections per event loop, so a loop made for one call and thrown away
would cost a connection each time. Instead, in order of preference:

1. a thread whose context names its home loop (a sync task run by a worker) runs the call on
   that loop;
2. a thread serving an async server's sync view (asgiref's ``sync_to_async``) runs it on the
   server's loop through ``async_to_sync``, as Django's own async glue does;
3. anything else runs it on one long-lived loop in a daemon thread of this process.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from asgiref.sync import SyncToAsync, async_to_sync

__all__ = ["home_loop", "run_sync"]

T = TypeVar("T")

# Set by a worker around a sync task's call: the loop that runs its store calls.
home_loop: contextvars.ContextVar[asyncio.AbstractEventLoop | None] = contextvars.ContextVar(
    "switchboard_tasks_home_loop", default=None
)


class _LoopThread:
    """One event loop in a daemon thread, made on first use, again after a fork."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid() or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                threading.Thread(
                    target=loop.run_forever, name="switchboard-tasks-bridge", daemon=True
                ).start()
                self._loop, self._pid = loop, os.getpid()
            return self._loop


_bridge = _LoopThread()


def _server_loop() -> asyncio.AbstractEventLoop | None:
    if getattr(SyncToAsync.threadlocal, "main_event_loop_pid", None) != os.getpid():
        return None
    loop: asyncio.AbstractEventLoop | None = getattr(
        SyncToAsync.threadlocal, "main_event_loop", None
    )
    return loop if loop is not None and loop.is_running() else None


def _in_a_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def run_sync(func: Callable[..., Awaitable[T]], *args: Any) -> T:
    """``await func(*args)`` from synchronous code (see the module docstring)."""
    loop = home_loop.get()
    if loop is None and not _in_a_running_loop() and _server_loop() is not None:
        return async_to_sync(func)(*args)
    if loop is None or not loop.is_running():
        loop = _bridge.loop()
    future = asyncio.run_coroutine_threadsafe(_call(func, args), loop)
    return future.result()


async def _call(func: Callable[..., Awaitable[T]], args: tuple[Any, ...]) -> T:
    return await func(*args)


def bridge_loop() -> asyncio.AbstractEventLoop:
    """The process's own loop for synchronous callers (started on first use)."""
    return _bridge.loop()
