"""The turns requests take to compute in the thread pool.

Python runs one thread at a time (the GIL), so a second request computing beside the first
gains nothing and costs a lot: the threads trade the GIL every switch interval, a switch can
catch one of them inside a lock the other needs next (Django takes asgiref's ``Local`` lock
for nearly every call), and the event loop waits behind them all. So requests take *turns*
to compute (:class:`ComputeTurns`): ``limit`` at a time, in order of arrival.

A request that waits (on the database, the network, a slow client) gives its turn up: every
``grace`` seconds the loop reads the CPU clock of each thread whose turn it is (each request
holds a :class:`TurnTicket`), so views that block still run side by side, up to the pool's
size.

A turn goes to a *job* before any thread does: a queued request holds no thread. When a
request ends, the thread that ran it runs the next queued one itself
(``ThreadPool.run_next``). (While WebSockets are open, the adapter starts the next one from
the event loop instead: see ``WSGIAdapter._pass_on``.)
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections import deque

from switchboard.server.wsgi.thread_pool import LoopJob, ThreadPool

__all__ = [
    "BUSY_SHARE",
    "CONCURRENCY_GRACE",
    "DEFAULT_CONCURRENCY",
    "ComputeTurns",
    "TurnTicket",
]

# Requests that compute at once, and how often the loop looks whether one computing waits
# instead: bench/django_http.py has the measurements.
DEFAULT_CONCURRENCY = 1
CONCURRENCY_GRACE = 0.002
# A request keeps its turn while its thread got at least this share of a CPU since the last
# look (or the GIL was busy anyway); less means it waits on I/O (see TurnTicket.waiting).
BUSY_SHARE = 0.25


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


# Per pool thread: its CPU clock and native id, which never change.
_this_thread = threading.local()


def _runnable(tid: int) -> bool:
    """Is thread ``tid`` of this process running or waiting for a CPU (Linux's state ``R``)?
    False where /proc does not tell (the CPU clocks alone decide then)."""
    try:
        with open(f"/proc/self/task/{tid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split(None, 1)[0] == b"R"
    except (OSError, IndexError):
        return False


class TurnTicket:
    """A request's turn to compute, and the CPU clock of the thread running it."""

    __slots__ = ("started", "clock", "tid", "cpu", "process_cpu", "wall", "holding")

    def __init__(self) -> None:
        self.started = False  # a thread runs it (it may have been given the turn before)
        self.clock: int | None = None
        self.tid = 0
        self.cpu = 0.0
        self.process_cpu = 0.0
        self.wall = 0.0
        self.holding = False  # has the turn (changed under ComputeTurns.lock)

    def start_clock(self) -> None:
        """Called in the pool thread as the request starts."""
        ids = _this_thread.__dict__.get("ids")
        if ids is None:  # once per thread: get_native_id() is a system call
            ids = _this_thread.ids = (_thread_clock(), threading.get_native_id())
        clock, self.tid = ids
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


class ComputeTurns:
    """ComputeTurns to compute, ``limit`` at a time, given to jobs first come first served.

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
        self.holders: set[TurnTicket] = set()
        self.queue: deque[tuple[TurnTicket, LoopJob]] = deque()
        self._looking: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, bool] = (
            weakref.WeakKeyDictionary()
        )

    def enter(self, ticket: TurnTicket, job: LoopJob, pool: ThreadPool) -> None:
        """On the loop: ``job`` (the request holding ``ticket``) runs once it has a turn."""
        with self.lock:
            if len(self.holders) >= self.limit or self.queue:
                self.queue.append((ticket, job))
                return
            ticket.holding = True
            self.holders.add(ticket)
        pool.start(job)

    def leave(self, ticket: TurnTicket) -> LoopJob | None:
        """From any thread: ``ticket`` gives its turn up (later calls do nothing); returns the
        job that the turn passes to, which the caller must start."""
        with self.lock:
            if not ticket.holding:
                return None
            ticket.holding = False
            self.holders.discard(ticket)
            if not self.queue:
                return None
            successor, job = self.queue.popleft()
            successor.holding = True
            self.holders.add(successor)
            return job

    def watch(self, loop: asyncio.AbstractEventLoop, pool: ThreadPool) -> None:
        """On ``loop``: look at the holders every ``grace`` seconds until none is left."""
        if loop not in self._looking:
            self._looking[loop] = True
            loop.call_later(self.grace, self._look, loop, pool)

    def _look(self, loop: asyncio.AbstractEventLoop, pool: ThreadPool) -> None:
        with self.lock:
            holders = list(self.holders)
        for ticket in holders:
            # Still computing (or not started): another request would only trade the GIL with
            # it. Waiting on I/O (or unknown): the next one may compute meanwhile.
            if ticket.waiting():
                job = self.leave(ticket)
                if job is not None:
                    pool.start(job)
        if self.holders or self.queue:
            loop.call_later(self.grace, self._look, loop, pool)
        else:
            self._looking.pop(loop, None)
