"""Background tasks: Switchboard's Django Tasks backend vs Celery 5, RQ and Dramatiq on Redis.

Each system (bench/tasks_systems.py) gets its own fresh redis-server, started here on a free
loopback port (tests/support/redis_servers.py) and emptied between runs, and ONE worker
process (its children counted too). The task is the same no-op everywhere
(bench/tasks_peers/__init__.py: one RPUSH to that Redis), so completion is detected the same
way for all: the bench reads the list the tasks push to (LLEN to count, the pushed times for
the first and last completion), never a system's own bookkeeping.

  throughput   --tasks N no-op tasks enqueued first (prefill, not timed: RQ enqueue_many on a
               pipeline, Celery apply_async on one held producer, Dramatiq send() one by one,
               Switchboard aenqueue() in concurrent batches of 100 on one event loop), then the
               worker starts. Worker startup is excluded by timing from the FIRST completion to
               the last: tasks/s = (N - 1) / (last - first). CPU per task: psutil's user +
               system of the worker and its children (waited-for ones included), and of its
               redis-server, from when the bench first sees a completion until the last, over
               the tasks run in that span; sampled before the worker is stopped.
  latency      on each system's best setup, a new worker, warmed up with 20 tasks, then
               --rate tasks/s for --duration s, each given time.time() taken right before
               its enqueue call (Celery delay, RQ Queue.enqueue, Dramatiq send, Switchboard
               aenqueue); the task records start - enqueue. p50 / p99 / max in ms, the mean
               time of the enqueue call (in the latency) and the worker's CPU meanwhile (%
               of one core).

Setups (C = --concurrency): Celery ``--pool threads --concurrency C`` and ``--pool solo``;
RQ ``SimpleWorker`` (one job at a time, no fork per job; --rq-tasks tasks, it is slow) and
RQ's default forking ``Worker`` (a fork per job; --fork-tasks tasks); Dramatiq
``--processes 1 --threads C``; Switchboard ``runworker --tasks --concurrency C``. The peers
keep no results (Celery ignore_result, RQ result_ttl=0, Dramatiq has none); Switchboard keeps
each TaskResult, as Django's API needs. Each system's best setup by throughput is marked * and
compared; the exit status is 1 when any system lost tasks (fewer than it was given ran).

Usage: ./scripts/bench tasks [--tasks N] [--concurrency C] [--rate R] [--duration S]
       [--only switchboard,celery,rq,dramatiq] [--rq-tasks N] [--fork-tasks N]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.tasks_peers import DONE, LATENCY, URL_ENV  # noqa: E402
from bench.tasks_systems import CLASSES, SYSTEMS, Setup  # noqa: E402
from tests.support.redis_servers import RedisServer  # noqa: E402

STOP_TIMEOUT = 15.0
WARM_UP = 20  # tasks run before the latency phase


@dataclass
class Result:
    system: str
    setup: Setup
    expected: int
    ran: int = 0
    rate: float | None = None
    cpu_ms: float | None = None
    redis_ms: float | None = None
    others: float | None = None
    startup: float | None = None
    lat: list[float] = field(default_factory=list)
    lat_expected: int = 0
    lat_cpu: float | None = None
    enqueue_us: float | None = None
    error: str | None = None

    @property
    def lost(self) -> int:
        return self.expected - self.ran + self.lat_expected - len(self.lat)


# -- the worker process ---------------------------------------------------------------------


class Worker:
    """One worker process with its log in a file; CPU of it and its children from psutil."""

    def __init__(self, setup: Setup, url: str) -> None:
        env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        env.update(PYTHONPATH=ROOT, **setup.env)
        env[URL_ENV] = url
        self.log = tempfile.TemporaryFile()
        self.started = time.time()
        self.proc = subprocess.Popen(setup.cmd, cwd=ROOT, env=env, stdout=self.log, stderr=self.log)
        self.ps = psutil.Process(self.proc.pid)

    def cpu(self) -> float:
        """User + system seconds of the worker, its finished (waited-for) children and its
        live ones."""
        try:
            t = self.ps.cpu_times()
            total = t.user + t.system + t.children_user + t.children_system
            for child in self.ps.children(recursive=True):
                try:
                    c = child.cpu_times()
                    total += c.user + c.system
                except psutil.NoSuchProcess:
                    pass
            return total
        except psutil.NoSuchProcess:
            return float("nan")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            for child in self.ps.children(recursive=True):
                child.kill()
            self.proc.kill()
            self.proc.wait()
        self.log.close()


# -- the measurements -----------------------------------------------------------------------


def machine_busy() -> float:
    """CPU seconds every process on the machine used so far (not idle nor iowait)."""
    t = psutil.cpu_times()
    guest = getattr(t, "guest", 0.0) + getattr(t, "guest_nice", 0.0)  # inside user/nice
    return sum(t) - t.idle - getattr(t, "iowait", 0.0) - guest


@dataclass
class Snapshot:
    """CPU seconds so far: the worker, its redis-server, this process, the whole machine."""

    worker: float
    redis: float
    me: float
    busy: float
    at: float

    @classmethod
    def take(cls, worker: Worker, redis_ps: psutil.Process) -> Snapshot:
        t = redis_ps.cpu_times()
        return cls(
            worker.cpu(), t.user + t.system, time.process_time(), machine_busy(), time.monotonic()
        )

    def others(self, before: Snapshot) -> float:
        """Cores that other processes on the machine used in between (they skew results)."""
        ours = self.worker - before.worker + self.redis - before.redis + self.me - before.me
        return max(self.busy - before.busy - ours, 0.0) / max(self.at - before.at, 1e-9)


def wait_count(r: Any, key: str, target: int, worker: Worker, timeout: float) -> int:
    """Poll LLEN until ``target`` (or the worker dies, or nothing new for ``timeout``)."""
    last, seen_at = -1, time.monotonic()
    while True:
        n = r.llen(key)
        if n >= target:
            return n
        now = time.monotonic()
        if n != last:
            last, seen_at = n, now
        if now - seen_at > timeout or not worker.alive():
            return n
        time.sleep(0.01)


@contextlib.contextmanager
def running(system: Any, setup: Setup, url: str, result: Result) -> Iterator[Worker]:
    """A worker for the block; an error, or a worker that died, is noted on ``result`` and
    shown with the worker's log, and the other measurements go on."""
    worker = Worker(setup, url)
    try:
        yield worker
    except Exception as exc:  # noqa: BLE001 - reported, the other systems go on
        result.error = repr(exc)
    finally:
        if not worker.alive():
            result.error = result.error or f"worker exited ({worker.proc.returncode})"
        if result.error or result.lost:
            what = result.error or f"{result.lost} task(s) lost"
            log = worker.output()
            print(f"  {system.label} [{setup.label}]: {what}; log:\n{log}", file=sys.stderr)
        worker.stop()


def throughput(
    system: Any, setup: Setup, r: Any, server: RedisServer, args: argparse.Namespace
) -> Result:
    n = setup.tasks or args.tasks
    redis_ps = psutil.Process(server.proc.pid if server.proc else 0)
    result = Result(system.key, setup, n)
    t = time.perf_counter()
    system.prefill(n)
    fill = time.perf_counter() - t
    with running(system, setup, server.url, result) as worker:
        deadline = time.monotonic() + args.timeout
        while (c0 := r.llen(DONE)) == 0 and worker.alive() and time.monotonic() < deadline:
            time.sleep(0.002)
        before = Snapshot.take(worker, redis_ps)
        result.ran = wait_count(r, DONE, n, worker, args.timeout)
        after = Snapshot.take(worker, redis_ps)
        times = sorted(float(x) for x in r.lrange(DONE, 0, -1))
        if len(times) > 1:
            result.rate = (len(times) - 1) / (times[-1] - times[0])
            result.startup = times[0] - worker.started
        if result.ran > c0:
            result.cpu_ms = (after.worker - before.worker) / (result.ran - c0) * 1000
            result.redis_ms = (after.redis - before.redis) / (result.ran - c0) * 1000
            result.others = after.others(before)
        print(
            f"  {system.label} [{setup.label}]: prefill {n} in {fill:.1f}s, worker's first "
            f"task after {fmt(result.startup)}s, ran {result.ran}/{n}, "
            f"{result.rate or 0:,.0f}/s, {result.cpu_ms or 0:.3f} ms CPU/task, other "
            f"processes {result.others or 0:.2f} cores",
            file=sys.stderr,
            flush=True,
        )
    return result


def latency(system: Any, result: Result, r: Any, url: str, args: argparse.Namespace) -> None:
    """The paced phase, on a new worker of ``result``'s setup, warmed up first."""
    count = int(args.rate * args.duration)
    result.lat_expected = count
    with running(system, result.setup, url, result) as worker:
        for _ in range(WARM_UP):  # the worker is up and connected before the clock starts
            system.enqueue(time.time())
        if wait_count(r, LATENCY, WARM_UP, worker, args.timeout) < WARM_UP:
            raise RuntimeError("the warm-up tasks did not run")
        r.delete(LATENCY)
        cpu0, t0, spent = worker.cpu(), time.monotonic(), 0.0
        for i in range(count):
            pause = t0 + i / args.rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            sent = time.time()
            system.enqueue(sent)
            spent += time.time() - sent
        result.enqueue_us = spent / max(count, 1) * 1e6
        wait_count(r, LATENCY, count, worker, args.timeout)
        result.lat_cpu = (worker.cpu() - cpu0) / (time.monotonic() - t0) * 100
        result.lat = sorted(float(x) * 1000 for x in r.lrange(LATENCY, 0, -1))
        print(
            f"  {system.label} [{result.setup.label}]: latency {len(result.lat)}/{count} at "
            f"{args.rate:g}/s, p50 {pct(result.lat, 0.5):.2f} ms, p99 "
            f"{pct(result.lat, 0.99):.2f} ms, worker {result.lat_cpu:.0f}% of a core",
            file=sys.stderr,
            flush=True,
        )


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))]


def measure(key: str, args: argparse.Namespace) -> list[Result]:
    results = []
    with RedisServer(name=f"bench-tasks-{key}") as server:
        os.environ[URL_ENV] = server.url
        system = CLASSES[key](server.url)
        try:
            with server.client() as r:
                for setup in system.setups(args):
                    server.flushall()
                    results.append(throughput(system, setup, r, server, args))
                top = best(results)
                if top is not None and args.duration > 0:
                    server.flushall()
                    latency(system, top, r, server.url, args)
        finally:
            system.close()
    return results


# -- the report -----------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 2) -> str:
    if value is None or value != value:
        return "-"
    return f"{value:,.0f}" if value >= 1000 else f"{value:.{digits}f}"


def best(results: list[Result]) -> Result | None:
    ok = [r for r in results if r.rate is not None and not r.lost and not r.error]
    return max(ok, key=lambda r: r.rate or 0.0, default=None)


def report(results: list[Result], args: argparse.Namespace) -> None:
    labels = {k: CLASSES[k].label for k in CLASSES}
    winners = {id(b) for k in CLASSES if (b := best([r for r in results if r.system == k]))}
    header = ["system", "setup", "tasks/s", "CPU ms/task", "Redis ms/task", "p50 ms", "p99 ms"]
    header += ["max ms", "enqueue µs", f"CPU% @{args.rate:g}/s", "others", "lost"]
    rows = [header]
    for r in results:
        lat = r.lat
        rows.append(
            [
                labels[r.system] + (" *" if id(r) in winners else ""),
                r.setup.label + (f" ({r.expected} tasks)" if r.expected != args.tasks else ""),
                fmt(r.rate, 0),
                fmt(r.cpu_ms, 3),
                fmt(r.redis_ms, 3),
                fmt(pct(lat, 0.5) if lat else None),
                fmt(pct(lat, 0.99) if lat else None),
                fmt(lat[-1] if lat else None),
                fmt(r.enqueue_us, 0),
                fmt(r.lat_cpu, 1),
                fmt(r.others, 2),
                str(r.lost) + (" (error)" if r.error else ""),
            ]
        )
    widths = [max(len(row[c]) for row in rows) for c in range(len(header))]
    print(f"\n{versions()}")
    print(
        f"{args.tasks} no-op tasks per throughput run unless said, one worker process each, "
        f"concurrency {args.concurrency}; tasks/s from the first completion to the last "
        f"(worker startup excluded); CPU per task: the worker (with its children) and its "
        f"redis-server; latency enqueue-to-start at {args.rate:g} tasks/s for "
        f"{args.duration:g}s on each system's * setup (enqueue µs: the client's enqueue call "
        f"there, part of that latency); others: cores that other processes on "
        f"the machine used during the throughput run"
    )
    for row in rows:
        print(
            "  ".join(
                c.ljust(w) if i < 2 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    for r in results:
        if r.lat and r.rate and r.rate < args.rate * 1.25:
            print(
                f"note: {labels[r.system]} runs {r.rate:,.0f} tasks/s at most, too close to "
                f"{args.rate:g}/s: its latency is mostly queueing"
            )
    busy = max((r.others or 0.0 for r in results), default=0.0)
    if busy > 0.2:
        print(f"note: other processes used up to {busy:.2f} of the machine's cores; skewed")
    sb = best([r for r in results if r.system == "switchboard"])
    peers = [r for r in results if r.system != "switchboard" and id(r) in winners]
    if sb is None or not peers:
        return
    top = max(peers, key=lambda r: r.rate or 0.0)
    print(
        f"\nSwitchboard / best peer (>1: Switchboard better)\n  throughput vs "
        f"{labels[top.system]} [{top.setup.label}]: {(sb.rate or 0) / (top.rate or 1):.2f}x"
    )
    timed = [r for r in peers if r.lat]
    if sb.lat and timed:
        low = min(timed, key=lambda r: pct(r.lat, 0.99))
        ratio = pct(low.lat, 0.99) / pct(sb.lat, 0.99)
        print(f"  p99 latency vs {labels[low.system]} [{low.setup.label}]: {ratio:.2f}x")


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in ("celery", "rq", "dramatiq", "django", "django-tasks", "redis"):
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            pass
    return ", ".join(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=20000, help="tasks per throughput run")
    parser.add_argument("--concurrency", type=int, default=8, help="threads/slots per worker")
    parser.add_argument("--rate", type=float, default=200.0, help="latency phase tasks/s")
    parser.add_argument("--duration", type=float, default=10.0, help="latency phase seconds")
    parser.add_argument("--only", default=",".join(SYSTEMS), help="comma list of systems")
    parser.add_argument("--fork-tasks", type=int, default=200, help="tasks for RQ's forking worker")
    parser.add_argument(
        "--rq-tasks", type=int, default=3000, help="tasks for RQ's SimpleWorker (slow)"
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds without progress = lost"
    )
    args = parser.parse_args()
    keys = [k.strip() for k in args.only.split(",") if k.strip()]
    for key in keys:
        if key not in CLASSES:
            parser.error(f"unknown system {key!r}")
    print(f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; {versions()}", file=sys.stderr)
    results = [r for key in keys for r in measure(key, args)]
    report(results, args)
    lost = [r for r in results if r.lost or r.error]
    if lost:
        print(
            "\nLOST TASKS: "
            + "; ".join(f"{r.system} [{r.setup.label}] {r.lost} {r.error or ''}" for r in lost)
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
