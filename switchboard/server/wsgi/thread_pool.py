"""The thread pool that runs blocking applications (WSGI), and the turns requests take in it.

Python runs one thread at a time (the GIL), so a second request computing beside the first
gains nothing and costs a lot: the threads trade the GIL every switch interval, a switch can
catch one of them inside a lock the other needs next (Django takes asgiref's ``Local`` lock
for nearly every call), and the event loop waits behind them all. So requests take *turns*
to compute (``Turns``): ``limit`` at a time, in order of arrival.

A request that waits (on the database, the network, a slow client) gives its turn up: every
``grace`` seconds the loop reads the CPU clock of each thread whose turn it is (``Place``),
so views that block still run side by side, up to the pool's size.

A turn goes to a *job* before any thread does: a queued request holds no thread. When a
request ends, the thread that ran it runs the next queued one itself (``run_next``): no
thread wakes another, and one thread (with its database connection, and warm caches) serves
request after request, as a single-threaded WSGI server would. (While WebSockets are open,
the adapter starts the next one from the event loop instead: see ``WSGIAdapter._pass_on``.)
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = [
    "BUSY_SHARE",
    "CONCURRENCY_GRACE",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_THREADS",
    "LoopJob",
    "Place",
    "Turns",
    "WorkerPool",
    "default_executor",
    "set_default_threads",
]

DEFAULT_THREADS = (
    4  # see the module docs of switchboard.integration.native_http for the measurement
)
# Requests that compute at once, and how often the loop looks whether one computing waits
# instead: bench/django_http.py has the measurements.
DEFAULT_CONCURRENCY = 1
CONCURRENCY_GRACE = 0.002
# A request keeps its turn while its thread got at least this share of a CPU since the last
# look (or the GIL was busy anyway); less means it waits on I/O (see Place.waiting).
BUSY_SHARE = 0.25

# fn() to run in a pool thread; its outcome settles the future, on the loop.
LoopJob = tuple[asyncio.AbstractEventLoop, asyncio.Future, Callable[[], Any]]

_threads: int | None = None
_pool: WorkerPool | None = None
_pool_pid = 0
_pool_lock = threading.Lock()


def set_default_threads(threads: int) -> None:
    """Size of the process-wide pool (``--threads``); takes effect when the pool is created."""
    global _threads
    if threads < 1:
        raise ValueError("threads must be at least 1")
    _threads = threads


def default_executor(threads: int | None = None) -> WorkerPool:
    """The process-wide pool that runs WSGI applications (a fresh one after ``fork()``)."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool = WorkerPool(_threads or threads or DEFAULT_THREADS)
            _pool_pid = os.getpid()
        return _pool


def _settle(future: asyncio.Future, result: Any, exc: BaseException | None) -> None:
    if future.cancelled():
        return
    if exc is None:
        future.set_result(result)
    else:
        future.set_exception(exc)


class WorkerPool:
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


def _thread_clock() -> int | None:
    """The CPU clock of the calling thread, readable from other threads (None where the
    platform has no such clock: a turn is then given up at the first look, after ``grace``)."""
    getcpuclockid = getattr(time, "pthread_getcpuclockid", None)
    if getcpuclockid is None:
        return None
    try:
        return getcpuclockid(threading.get_ident())
    except OSError:
        return None


def _runnable(tid: int) -> bool:
    """Is thread ``tid`` of this process running or waiting for a CPU (Linux's state ``R``)?
    False where /proc does not tell (the CPU clocks alone decide then)."""
    try:
        with open(f"/proc/self/task/{tid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split(None, 1)[0] == b"R"
    except (OSError, IndexError):
        return False


class Place:
    """A request's turn to compute, and the CPU clock of the thread running it."""

    __slots__ = ("started", "clock", "tid", "cpu", "process_cpu", "wall", "holding")

    def __init__(self) -> None:
        self.started = False  # a thread runs it (it may have been given the turn before)
        self.clock: int | None = None
        self.tid = 0
        self.cpu = 0.0
        self.process_cpu = 0.0
        self.wall = 0.0
        self.holding = False  # has the turn (changed under Turns.lock)

    def start_clock(self) -> None:
        """Called in the pool thread as the request starts."""
        clock = _thread_clock()
        self.tid = threading.get_native_id()
        if clock is not None:
            self.cpu = time.clock_gettime(clock)
            self.process_cpu = time.process_time()
            self.wall = time.monotonic()
            self.clock = clock  # the loop reads the others once this is set
        self.started = True

    def waiting(self) -> bool:
        """Is the thread waiting on something else than the GIL (the database, the network,
        a client)? Yes when, since the last look, it ran on a CPU for less than
        ``BUSY_SHARE`` of the time while the process as a whole left at least that share of
        a CPU unused (else the thread was only waiting for the GIL), and it is not runnable
        right now (else the OS had only left the whole process unscheduled, as a busy
        machine does). Called from the loop; False before the thread has started, True when
        its clock is unknown or gone."""
        if not self.started:
            return False
        clock = self.clock
        if clock is None:
            return True
        now = time.monotonic()
        process_cpu = time.process_time()
        try:
            cpu = time.clock_gettime(clock)
        except OSError:
            return True
        window = (now - self.wall) * BUSY_SHARE
        idle = cpu - self.cpu < window and process_cpu - self.process_cpu < (
            (now - self.wall) - window
        )
        self.cpu, self.process_cpu, self.wall = cpu, process_cpu, now
        return idle and not _runnable(self.tid)


class Turns:
    """Turns to compute, ``limit`` at a time, given to jobs first come first served.

    ``enter`` (on the loop) starts a job now if a turn is free, else queues it; ``leave``
    (from the job's thread when it ends, or from the loop when it finds the job waiting)
    gives the turn up and returns the queued job that now has it, for the caller to start.
    ``watch`` keeps the loop looking at the jobs that hold turns while any do.
    """

    def __init__(self, limit: int, grace: float = CONCURRENCY_GRACE) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.grace = grace
        self.lock = threading.Lock()
        self.holders: set[Place] = set()
        self.queue: deque[tuple[Place, LoopJob]] = deque()
        self._looking: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, bool] = (
            weakref.WeakKeyDictionary()
        )

    def enter(self, place: Place, job: LoopJob, pool: WorkerPool) -> None:
        """On the loop: ``job`` (whose request ``place`` is) runs once it has a turn."""
        with self.lock:
            if len(self.holders) >= self.limit or self.queue:
                self.queue.append((place, job))
                return
            place.holding = True
            self.holders.add(place)
        pool.start(job)

    def leave(self, place: Place) -> LoopJob | None:
        """From any thread: ``place`` gives its turn up (later calls do nothing); returns the
        job that the turn passes to, which the caller must start."""
        with self.lock:
            if not place.holding:
                return None
            place.holding = False
            self.holders.discard(place)
            if not self.queue:
                return None
            successor, job = self.queue.popleft()
            successor.holding = True
            self.holders.add(successor)
            return job

    def watch(self, loop: asyncio.AbstractEventLoop, pool: WorkerPool) -> None:
        """On ``loop``: look at the holders every ``grace`` seconds until none is left."""
        if loop not in self._looking:
            self._looking[loop] = True
            loop.call_later(self.grace, self._look, loop, pool)

    def _look(self, loop: asyncio.AbstractEventLoop, pool: WorkerPool) -> None:
        with self.lock:
            holders = list(self.holders)
        for place in holders:
            # Still computing (or not started): another request would only trade the GIL with
            # it. Waiting on I/O (or unknown): the next one may compute meanwhile.
            if place.waiting():
                job = self.leave(place)
                if job is not None:
                    pool.start(job)
        if self.holders or self.queue:
            loop.call_later(self.grace, self._look, loop, pool)
        else:
            self._looking.pop(loop, None)
