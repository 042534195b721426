"""The thread pool that runs blocking applications (WSGI): bounded, per process, its threads
started as work arrives.

It runs *jobs* (:data:`LoopJob`): a function whose outcome settles an asyncio future on the
loop that asked. When a request ends, the thread that ran it runs the next queued one itself
(:meth:`ThreadPool.run_next`): no thread wakes another, and one thread (with its database
connection, and warm caches) serves request after request, as a single-threaded WSGI server
would. Which request may compute when is decided before any thread is involved, by
:mod:`~switchboard.server.wsgi.compute_turns`.
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["DEFAULT_THREADS", "LoopJob", "ThreadPool", "default_executor", "set_default_threads"]

DEFAULT_THREADS = (
    4  # see the module docs of switchboard.integration.native_http for the measurement
)

# fn() to run in a pool thread; its outcome settles the future, on the loop.
LoopJob = tuple[asyncio.AbstractEventLoop, asyncio.Future, Callable[[], Any]]

_threads: int | None = None
_pool: ThreadPool | None = None
_pool_lock = threading.Lock()


def set_default_threads(threads: int) -> None:
    """Size of the process-wide pool (``--threads``); takes effect when the pool is created."""
    global _threads
    if threads < 1:
        raise ValueError("threads must be at least 1")
    _threads = threads


def default_executor(threads: int | None = None) -> ThreadPool:
    """The process-wide pool that runs WSGI applications (a fresh one after ``fork()``)."""
    global _pool
    pool = _pool  # no lock and no getpid() per request: a fork forgets the parent's pool
    if pool is not None:
        return pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPool(_threads or threads or DEFAULT_THREADS)
        return _pool


def _forget_pool() -> None:
    # In a forked child: the parent's threads did not come along.
    global _pool, _pool_lock
    _pool = None
    _pool_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _settle(future: asyncio.Future, result: Any, exc: BaseException | None) -> None:
    if future.cancelled():
        return
    if exc is None:
        future.set_result(result)
    else:
        future.set_exception(exc)


class ThreadPool:
    """A bounded pool of daemon threads, started as work arrives.

    Daemon threads, unlike ``ThreadPoolExecutor``'s (joined at interpreter exit): a request
    stuck forever must not keep the process alive once the server has given up on it (the
    live-server thread, ``runserver``'s autoreloader child, a test run).

    It runs ``LoopJob``s (``start``, ``run``): the thread settles the job's asyncio future
    with one ``call_soon_threadsafe``, with no ``concurrent.futures`` future and its lock and
    callbacks in between (``run_in_executor``'s way, which cost the loop about a tenth of a
    plain Django view).
    """

    def __init__(self, max_workers: int, name: str = "switchboard-wsgi") -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.max_workers = max_workers
        self.name = name
        self._jobs: queue.SimpleQueue[LoopJob | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False
        self._local = threading.local()  # .next: the job a pool thread runs after this one

    def start(self, job: LoopJob) -> None:
        """Run ``job`` in a pool thread (from any thread)."""
        self._put(job)

    def run(self, loop: asyncio.AbstractEventLoop, fn: Callable[[], Any]) -> asyncio.Future:
        """``fn()`` in a pool thread, its outcome as a future of ``loop`` (called on ``loop``)."""
        future = loop.create_future()
        self._put((loop, future, fn))
        return future

    def run_next(self, job: LoopJob) -> None:
        """From inside a job: run ``job`` in this same thread once the current job is done.
        From any other thread it is the same as ``start``."""
        if getattr(self._local, "pool", None) is self:
            self._local.next = job
        else:
            self.start(job)

    def _put(self, job: LoopJob) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new work after shutdown")
            self._jobs.put(job)
            # Wake an idle thread, or start one.
            if not self._idle.acquire(blocking=False) and len(self._threads) < self.max_workers:
                thread = threading.Thread(
                    target=self._work, name=f"{self.name}_{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()

    def _work(self) -> None:
        local = self._local
        local.pool = self
        while True:
            job = self._jobs.get()
            if job is None:
                return
            while job is not None:
                self._run(*job)
                job = local.__dict__.pop("next", None)
            self._idle.release()

    @staticmethod
    def _run(
        loop: asyncio.AbstractEventLoop, future: asyncio.Future, fn: Callable[[], Any]
    ) -> None:
        try:
            result = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiter
            outcome: tuple[Any, BaseException | None] = (None, exc)
            del exc  # no cycle through the traceback
        else:
            outcome = (result, None)
            del result
        try:
            loop.call_soon_threadsafe(_settle, future, *outcome)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    def shutdown(self, wait: bool = True) -> None:
        """No more jobs; the threads end once the queued ones are done (``wait``: join them)."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        for _ in threads:
            self._jobs.put(None)
        if wait:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join()
