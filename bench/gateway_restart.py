"""Deploys drop nothing: WebSockets through a gateway while every worker behind it is replaced.

A redis-server, one ``switchboard serve --gateway`` and --workers ``manage.py runworker
--gateway`` processes of tests/sites/gateway_site (tests/support/gateway_processes.py). Load
processes (--client-procs, one asyncio loop each on websockets' client) open --sockets
WebSockets to /ws/echo/; each socket sends one numbered message every --interval seconds
(the sockets' sends spread evenly over the interval) and checks the echoes. Meanwhile every
worker is restarted in turn the way a deploy does it (start its replacement, wait until the
gateway logs that it joined, SIGTERM the old one, wait for it to exit), then one worker is
killed with SIGKILL (and a replacement started); the sockets send --tail seconds more, then
wait for their last echoes and close.

Printed: sockets closed by the other side (must be 0), messages sent, echoes received, lost
(sent, never echoed), duplicates (echoed twice: allowed only across the SIGKILL, at-least-once),
out of order, echo latency (a message in flight while a replacement starts, a SIGTERM handover
or the SIGKILL's aftermath counts there, else calm), connection moves (from the logs, and as
the clients saw them: the echoing pid changed), each process's CPU (utime + stime from /proc:
what the bottleneck was) and the rest of the machine's. Exit status 1 if a socket closed, a
message was lost or echoes came out of order: an acceptance check.

Usage: ./scripts/bench gateway_restart [--quick] [--sockets N] [--workers K] [--client-procs P]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import resource
import shutil
import signal
import sys
import tempfile
import threading
import time
from array import array
from pathlib import Path
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.gateway_echo import cpu_seconds, machine_busy, pct  # noqa: E402
from tests.support.gateway_processes import Deployment, Proc, redis_layers  # noqa: E402
from tests.support.redis_servers import RedisServer  # noqa: E402

SETTLE = 0.5  # seconds after a move ends that still count as "during moves"
KINDS = ("calm", "start", "restart", "kill")
LOST = "lost: not heard"  # the gateway's log line for a worker it gave up on
LABELS = {"start": "replacement start-up", "restart": "SIGTERM handover", "kill": "SIGKILL"}
# Log lines that point at a problem (the expected "lost" warning of the SIGKILL is not one).
SUSPECT = re.compile(r"Traceback|[Ee]rror|\b101[13]\b|never arrived|not sent|malformed|refused")


# -- the load: runs in its own processes ----------------------------------------------------


class Socket:
    """One client WebSocket's bookkeeping."""

    __slots__ = ("ws", "phase", "sent", "sent_at", "got", "top", "dup_at", "ooo")
    __slots__ += ("pid", "moved_at", "closed", "done")

    def __init__(self, ws: Any, phase: float) -> None:
        self.ws, self.phase = ws, phase
        self.sent = 0
        self.sent_at: dict[int, float] = {}
        self.got: set[int] = set()
        self.top = 0  # highest number echoed so far
        self.dup_at: list[tuple[float, float]] = []  # (sent, arrived again)
        self.ooo = 0
        self.pid: int | None = None
        self.moved_at: list[float] = []  # first echo from another worker
        self.closed: str | None = None  # how the other side closed it
        self.done = asyncio.Event()  # every sent message echoed, sending over


def _load(url: str, phases: list[float], interval: float, clock: Any, out: Any) -> None:
    """A load process: open the sockets, report ready, send from clock[0] until clock[1]."""
    try:
        import uvloop  # the client's own overhead, kept low

        factory = uvloop.new_event_loop
    except ImportError:
        factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        out.put(runner.run(_load_async(url, phases, interval, clock, out)))


async def _load_async(
    url: str, phases: list[float], interval: float, clock: Any, out: Any
) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    opening = asyncio.Semaphore(50)
    failures: list[str] = []

    async def open_one(phase: float) -> Socket | None:
        async with opening:
            try:
                ws = await connect(url, compression=None, ping_interval=None, open_timeout=30)
            except Exception as exc:  # noqa: BLE001 - counted and shown
                failures.append(repr(exc))
                return None
        return Socket(ws, phase)

    opened = await asyncio.gather(*(open_one(p) for p in phases))
    socks = [s for s in opened if s is not None]
    out.put(("ready", len(socks), failures[:3]))
    while clock[0] == 0.0:
        await asyncio.sleep(0.02)
    start = clock[0]
    lat_sent, lat = array("d"), array("d")
    sending_over = asyncio.Event()

    async def send(s: Socket) -> None:
        due = start + s.phase
        while due < clock[1] and s.closed is None:
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            n = s.sent + 1
            s.sent_at[n] = time.monotonic()
            try:
                await s.ws.send(str(n))
            except Exception:  # noqa: BLE001 - the receiver records the close
                return
            s.sent = n
            due += interval

    async def receive(s: Socket) -> None:
        try:
            async for raw in s.ws:
                now = time.monotonic()
                reply = json.loads(raw)
                n = int(reply["echo"])
                if n in s.got:
                    s.dup_at.append((s.sent_at[n], now))
                else:
                    if n < s.top:
                        s.ooo += 1
                    s.top = max(s.top, n)
                    s.got.add(n)
                    lat_sent.append(s.sent_at[n])
                    lat.append(now - s.sent_at[n])
                if s.pid is not None and reply["pid"] != s.pid:
                    s.moved_at.append(now)
                s.pid = reply["pid"]
                if sending_over.is_set() and len(s.got) >= s.sent:
                    s.done.set()
        except Exception as exc:  # noqa: BLE001 - a close the client did not ask for
            s.closed = repr(exc)
        else:
            if not s.done.is_set():
                rcvd = s.ws.close_rcvd
                s.closed = f"closed {rcvd.code if rcvd else 'without a close frame'}"
        s.done.set()

    senders = [asyncio.ensure_future(send(s)) for s in socks]
    receivers = [asyncio.ensure_future(receive(s)) for s in socks]
    await asyncio.gather(*senders)
    sending_over.set()
    for s in socks:
        if len(s.got) >= s.sent:
            s.done.set()
    # The last echoes, then close: what is still missing after the wait is lost.
    await asyncio.wait([asyncio.ensure_future(s.done.wait()) for s in socks], timeout=clock[2])
    for s in socks:
        s.done.set()  # from here on a close is ours
    await asyncio.gather(*(s.ws.close() for s in socks if s.closed is None))
    await asyncio.gather(*receivers, return_exceptions=True)
    return {
        "opened": len(socks),
        "failed": len(phases) - len(socks),
        "closed": [s.closed for s in socks if s.closed is not None],
        "sent": sum(s.sent for s in socks),
        "received": sum(len(s.got) for s in socks),
        "lost": sum(s.sent - len(s.got) for s in socks),
        "dup_at": [t for s in socks for t in s.dup_at],
        "ooo": sum(s.ooo for s in socks),
        "moved_at": [t for s in socks for t in s.moved_at],
        "moved_sockets": sum(1 for s in socks if s.moved_at),
        "lat_sent": lat_sent.tobytes(),
        "lat": lat.tobytes(),
    }


# -- CPU from /proc ------------------------------------------------------------------------


class CpuWatch:
    """Samples the CPU time of named processes every second from ``begin()`` on; keeps each
    one's last reading (a process that exits counts up to its last second) and busiest second."""

    def __init__(self) -> None:
        self.pids: dict[int, str] = {}
        self.base: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.peak: dict[int, float] = {}  # busiest second, in CPU seconds per second
        self.machine = 0.0  # CPU seconds every process on the machine used meanwhile
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def add(self, pid: int, role: str, from_zero: bool = False) -> None:
        self.pids[pid] = role
        now = cpu_seconds(pid) or 0.0
        self.base[pid] = 0.0 if from_zero else now
        self.last[pid] = now

    def begin(self) -> None:
        for pid in self.pids:
            self.base[pid] = self.last[pid] = cpu_seconds(pid) or self.last[pid]
        self.started = time.monotonic()
        self.machine = -machine_busy()
        self._thread.start()

    def _run(self) -> None:
        then = time.monotonic()
        while not self._stop.wait(1.0):
            now = time.monotonic()
            for pid in list(self.pids):
                used = cpu_seconds(pid)
                if used is not None:
                    rate = (used - self.last[pid]) / (now - then)
                    self.peak[pid] = max(self.peak.get(pid, 0.0), rate)
                    self.last[pid] = used
            then = now

    def end(self) -> float:
        self._stop.set()
        self._thread.join()
        self.machine += machine_busy()
        return time.monotonic() - self.started

    def used(self, pid: int) -> float:
        return self.last[pid] - self.base[pid]

    def mark(self) -> None:
        """Note every process's CPU now (the end of the calm stretch)."""
        self.marked = {
            pid: (cpu_seconds(pid) or self.last[pid]) - self.base[pid] for pid in self.pids
        }
        self.marked_after = time.monotonic() - self.started


# -- the deployment and its moves ------------------------------------------------------------


class Moves:
    """The deploy: windows of time during which connections were moving."""

    def __init__(self, deployment: Deployment, gateway: Proc, cpu: CpuWatch, args: Any) -> None:
        self.d, self.gateway, self.cpu, self.args = deployment, gateway, cpu, args
        self.workers: list[Proc] = []
        self.windows: list[list[Any]] = []  # [kind, began, ended]
        self.joined = 0

    def start_worker(self, from_zero: bool, worker: Proc | None = None) -> Proc:
        worker = worker or self.d.worker()
        self.joined += 1
        self.gateway.wait_for("joined", count=self.joined, timeout=30)
        self.cpu.add(worker.pid, "worker", from_zero=from_zero)
        self.workers.append(worker)
        return worker

    def restart(self, old: Proc) -> None:
        began = time.monotonic()
        self.start_worker(from_zero=True)
        self.windows.append(["start", began, handover := time.monotonic()])  # start-up takes CPU
        old.signal(signal.SIGTERM)
        code = old.wait(timeout=self.args.shutdown_timeout + 20)
        self.workers.remove(old)
        self.windows.append(["restart", handover, time.monotonic() + SETTLE])
        print(f"  restarted worker {old.pid} (exit {code}) in {time.monotonic() - began:.1f}s")

    def kill(self, old: Proc) -> None:
        began = time.monotonic()
        old.signal(signal.SIGKILL)
        old.wait()
        self.workers.remove(old)
        replacement = self.d.worker(wait=False)  # as a supervisor would restart it
        losses = self.gateway.output().count(LOST) + 1  # an overloaded gateway may lose more
        self.gateway.wait_for(LOST, timeout=30, count=losses)
        noticed = time.monotonic()
        self.windows.append(["kill", began, noticed + SETTLE])
        self.start_worker(from_zero=True, worker=replacement)
        print(f"  killed worker {old.pid}; the gateway noticed {noticed - began:.1f}s later")

    def stretch(self, moved_at: list[float]) -> str:
        """A move lasts until the last socket it moved echoed from its new worker; per move,
        how many sockets it moved and how long that took."""
        moves = [w for w in self.windows if w[0] != "start"]
        counts, took = [0] * len(moves), [0.0] * len(moves)
        for t in moved_at:
            i = sum(1 for w in moves if w[1] <= t) - 1  # the latest move begun by then
            counts[i] += 1
            took[i] = max(took[i], t - moves[i][1])
            moves[i][2] = max(moves[i][2], t + SETTLE)
        return ", ".join(f"{w[0]} {counts[i]} in {took[i]:.1f}s" for i, w in enumerate(moves))

    def kind_at(self, t: float, until: float | None = None) -> str | None:
        """The move under way at ``t`` (or at any time from ``t`` to ``until``), if any."""
        until = t if until is None else until
        hits = {kind for kind, began, ended in self.windows if t <= ended and until >= began}
        return next((kind for kind in ("kill", "restart", "start") if kind in hits), None)


# -- main --------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 sockets, 2 workers")
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--client-procs", type=int, default=1, help="load processes")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between sends")
    parser.add_argument("--calm", type=float, default=5.0, help="seconds before the first move")
    parser.add_argument("--gap", type=float, default=3.0, help="seconds between moves")
    parser.add_argument("--tail", type=float, default=5.0, help="seconds after the last move")
    parser.add_argument("--drain", type=float, default=15.0, help="wait for the last echoes")
    parser.add_argument("--shutdown-timeout", type=float, default=10.0)
    parser.add_argument("--path", default="/ws/echo/", help="/ws/pinned/: see the check fail")
    parser.add_argument("--keep-logs", action="store_true", help="also when the run passed")
    args = parser.parse_args()
    if args.quick:
        args.sockets, args.workers = 200, 2

    # Every process started from here inherits the limit: the gateway holds one fd per socket.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = max(soft, min(hard, args.sockets * 2 + 1000))
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    if limit < args.sockets + 200:
        sys.exit(f"open-files limit {limit} (hard {hard}) is too low for {args.sockets} sockets")

    logs = Path(tempfile.mkdtemp(prefix="sb-gateway-restart-"))
    ctx = multiprocessing.get_context("spawn")
    loaders: list[Any] = []
    with RedisServer(name="bench-gateway-restart") as redis:
        d, code = Deployment(logs, redis_layers(redis.url)), 1
        try:
            code = run(d, redis, ctx, loaders, args)
            return code
        finally:
            for p in loaders:
                if p.is_alive():
                    p.kill()
            d.close()
            if args.keep_logs or code:  # a failed run's logs are the evidence
                print(f"logs kept in {logs}")
            else:
                shutil.rmtree(logs, ignore_errors=True)


def run(d: Deployment, redis: RedisServer, ctx: Any, loaders: list[Any], args: Any) -> int:
    cpu = CpuWatch()
    gateway, address = d.gateway()
    cpu.add(gateway.pid, "gateway")
    assert redis.proc is not None
    cpu.add(redis.proc.pid, "redis-server")
    moves = Moves(d, gateway, cpu, args)
    for _ in range(args.workers):
        moves.start_worker(from_zero=False)

    url = f"ws://{address}{args.path}"
    clock = ctx.RawArray("d", [0.0, float("inf"), args.drain])  # start, stop, drain
    out = ctx.Queue()
    procs = max(1, args.client_procs)
    for i in range(procs):
        phases = [k / args.sockets * args.interval for k in range(i, args.sockets, procs)]
        p = ctx.Process(target=_load, args=(url, phases, args.interval, clock, out))
        p.start()
        loaders.append(p)
        cpu.add(p.pid, "client")
    opened, failures = 0, []
    t0 = time.monotonic()
    for _ in loaders:
        _, n, failed = out.get(timeout=300)
        opened += n
        failures += failed
    why = f"; failures: {failures}" if failures else ""
    print(f"  {opened}/{args.sockets} sockets open in {time.monotonic() - t0:.1f}s{why}")

    cpu.begin()
    clock[0] = time.monotonic() + 0.2
    time.sleep(args.calm)
    cpu.mark()
    for old in list(moves.workers[: args.workers]):
        moves.restart(old)
        time.sleep(args.gap)
    moves.kill(moves.workers[0])
    time.sleep(args.tail)
    clock[1] = time.monotonic()
    results = [out.get(timeout=args.drain + 120) for _ in loaders]
    for p in loaders:
        p.join(10)
    elapsed = cpu.end()
    ok = report(results, moves, cpu, elapsed, d.procs, args, sent_window=clock[1] - clock[0])
    return 0 if ok else 1


def merged(results: list[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {}
    for r in results:
        for key, value in r.items():
            total[key] = total.get(key, type(value)()) + value
    return total


def report(results, moves: Moves, cpu: CpuWatch, elapsed: float, procs, args, sent_window):
    """Print the tables; whether the run passed (no socket closed, nothing lost or reordered)."""
    r = merged(results)
    sent_t, lat = array("d"), array("d")
    sent_t.frombytes(r["lat_sent"])
    lat.frombytes(r["lat"])
    durations = moves.stretch(r["moved_at"])
    calm: list[float] = []
    moving: dict[str, list[float]] = {kind: [] for kind in KINDS[1:]}
    calm_echoes = 0  # echoed before the first move: the calm CPU's denominator
    for t, v in zip(sent_t, lat, strict=True):
        kind = moves.kind_at(t, t + v)  # in flight while something moved
        (calm if kind is None else moving[kind]).append(v * 1000)
        calm_echoes += t + v < moves.windows[0][1]
    dup_kinds = [moves.kind_at(sent, again) or "calm" for sent, again in r["dup_at"]]
    dups = ", ".join(f"{k} {dup_kinds.count(k)}" for k in KINDS)
    logs = "".join(p.output() for p in procs)
    released = sum(int(n) for n in re.findall(r"Handing (\d+) connection", logs))
    lost_moved = sum(int(n) for n in re.findall(r"moving its (\d+) connection", logs))
    losses = f"{logs.count(LOST)} worker(s) lost (1 expected: the SIGKILLed one)"
    restarts = sum(1 for k, *_ in moves.windows if k == "restart")
    print()
    print(
        f"Gateway + {args.workers} workers (Redis layer), {r['opened']} WebSockets each sending "
        f"every {args.interval:g}s for {sent_window:.0f}s; {restarts} rolling restarts (SIGTERM) "
        "then 1 SIGKILL"
    )
    rows = [
        ("sockets closed", len(r["closed"]) + r["failed"]),
        ("messages sent", r["sent"]),
        ("echoes received", r["received"]),
        ("lost", r["lost"]),
        ("duplicates", f"{len(r['dup_at'])} ({dups})"),
        ("out of order", r["ooo"]),
        ("moves (logs)", f"{released} handed back on SIGTERM + {lost_moved} after {losses}"),
        ("moves (clients)", f"{len(r['moved_at'])} pid changes on {r['moved_sockets']} sockets"),
        ("each move", f"{durations} (sockets; until the last echoed from its new worker)"),
    ]
    for name, value in rows:
        print(f"  {name:18s}{value}")
    if r["closed"]:
        print(f"  closed: {sorted(set(r['closed']))[:5]}")
    print(f"\n  {'echo latency ms':22s}{'samples':>9s}{'p50':>9s}{'p99':>9s}{'max':>9s}")
    groups = {"calm": calm, **{LABELS[k]: moving[k] for k in KINDS[1:]}}
    groups["all"] = [v for values in groups.values() for v in values]
    for name, values in groups.items():
        print(
            f"  {name:22s}{len(values):9d}{pct(values, 0.5):9.2f}{pct(values, 0.99):9.2f}"
            f"{max(values, default=float('nan')):9.1f}"
        )
    print(f"\n  CPU over the {elapsed:.0f}s run (1.00 = one core busy; 2 cores here)")
    print(f"  {'process':24s}{'avg':>7s}{'busiest s':>11s}")
    server = ours = 0.0
    for pid, role in cpu.pids.items():
        used = cpu.used(pid)
        ours += used
        if role != "client":
            server += used
        print(f"  {role + ' ' + str(pid):24s}{used / elapsed:7.2f}{cpu.peak.get(pid, 0):11.2f}")
    others = max(cpu.machine - ours, 0.0) / elapsed
    print(f"  {'other processes':24s}{others:7.2f}{'':11s}(the rest of the machine)")
    calm_cpu = sum(used for pid, used in cpu.marked.items() if cpu.pids[pid] != "client")
    print(
        f"  server CPU per echo (gateway + workers + redis-server): calm (first "
        f"{cpu.marked_after:.0f}s, {calm_echoes} echoes) {calm_cpu / max(calm_echoes, 1) * 1e6:.0f}"
        f" µs; whole run {server / max(r['received'], 1) * 1e6:.0f} µs (replacements' start-up "
        "included)"
    )
    suspect = [
        f"{Path(p.log_path).name}: {line.strip()}"
        for p in procs
        for line in p.output().splitlines()
        if SUSPECT.search(line)
    ]
    if suspect:
        print(f"\n  {len(suspect)} log line(s) worth a look:")
        for line in suspect[:12]:
            print(f"    {line[:200]}")
    ok = not (r["failed"] or r["closed"] or r["lost"] or r["ooo"])
    print(f"\n  {'PASS' if ok else 'FAIL'}: no socket closed, nothing lost, nothing out of order")
    return ok


if __name__ == "__main__":
    sys.exit(main())
