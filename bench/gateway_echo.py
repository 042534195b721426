"""Echo round trip through gateway mode vs in-process Switchboard vs Channels + Daphne.

The same echo consumer (bench/consumer_apps.py: an AsyncWebsocketConsumer sending back each
text message) served three ways, each in its own processes, one after another in the same run:

  switchboard   ``switchboard serve`` runs the consumer in-process
  gateway       ``switchboard serve --gateway`` holds the socket; one ``runworker --gateway``
                runs the consumer; a redis-server (started here) is the layer between them
  channels      Channels 4 consumer on Daphne, in-process
  gateway_ipc   (only when named in --servers) the gateway over the IPC layer: without the
                Redis hops, so the difference is what Redis and its client cost

The client runs here on raw sockets with pre-built frames (bench/server_ws.py): --concurrency
lists how many connections each keep one message in flight (1: strictly sequential round
trips). Printed per server and concurrency: p50 and p99 round trip, msgs/s, and server CPU per
message (utime + stime from /proc of every server process: the server and its children, plus
for the gateway the worker and redis-server), with the gateway's ratios to the other two, the
issue's targets (gateway p50 within 2x of in-process Switchboard, below Channels + Daphne) and
the cores other processes on the machine used meanwhile (a busy machine skews latency).

Usage: ./scripts/bench gateway_echo [--quick] [--duration S] [--rounds N] [--concurrency 1,50]
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.server_ws import free_port, masked_frame, open_ws  # noqa: E402
from tests.support.gateway_processes import ipc_layers, redis_layers  # noqa: E402
from tests.support.redis_servers import RedisServer  # noqa: E402

PY = sys.executable
APP = "bench.consumer_apps:application"
TICKS = os.sysconf("SC_CLK_TCK")
SERVERS = ("switchboard", "gateway", "channels")
WORKER = (
    "import bench.consumer_apps; from django.core.management import execute_from_command_line; "
    "execute_from_command_line(['manage.py', 'runworker', '--gateway'])"
)


# -- CPU from /proc ------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of one process; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def children(pid: int) -> list[int]:
    found = []
    for task in os.listdir(f"/proc/{pid}/task") if os.path.isdir(f"/proc/{pid}/task") else []:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(c) for c in f.read().split()]
        except OSError:
            continue
    return found + [g for c in found for g in children(c)]


def machine_busy() -> float:
    """CPU seconds all processes on the machine used so far (every core, not idle)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / TICKS  # less idle and iowait


# -- the servers ----------------------------------------------------------------------------


class Served:
    """One way of serving the echo consumer: its processes, ready for round trips."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = free_port()
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[tuple[str, Any]] = []
        self.redis: RedisServer | None = None
        self.ipc_dir: str | None = None
        env = dict(os.environ, PYTHONPATH=ROOT, BENCH_FRAMEWORK="switchboard")
        common = ["--host", "127.0.0.1", "--port", str(self.port), "--no-access-log"]
        serve = [PY, "-m", "switchboard", "serve", APP, *common, "--log-level", "warning"]
        if name == "switchboard":
            self._start("server", serve, env)
        elif name in ("gateway", "gateway_ipc"):
            if name == "gateway":
                self.redis = RedisServer(name="bench-gateway-echo")
                layers = redis_layers(self.redis.url)
            else:  # the same over the IPC layer (one machine): what the Redis hops cost
                self.ipc_dir = tempfile.mkdtemp(prefix="sb-gateway-echo-")
                layers = ipc_layers(self.ipc_dir)
            env["BENCH_CHANNEL_LAYERS"] = json.dumps(layers)
            self._start("worker", [PY, "-c", WORKER], env)
            self._start("gateway", [*serve, "--gateway"], env)
        elif name == "channels":
            env["BENCH_FRAMEWORK"] = "channels"
            daphne = [PY, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "-v", "0"]
            self._start("daphne", [*daphne, APP], env)
        else:
            raise ValueError(name)
        self.wait_ready()

    def _start(self, role: str, cmd: list[str], env: dict[str, str]) -> None:
        log = tempfile.TemporaryFile()  # a file, not a pipe nobody reads
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        self.logs.append((role, log))

    def output(self) -> str:
        text = []
        for role, log in self.logs:
            log.seek(0)
            text.append(f"--- {role}\n" + log.read().decode(errors="replace")[-3000:])
        return "\n".join(text)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until a message makes the round trip (the gateway's needs its worker to join)."""
        deadline = time.monotonic() + timeout
        frame = masked_frame(0x1, b"ready?")
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.procs):
                raise RuntimeError(f"{self.name} exited early:\n{self.output()}")
            try:
                sock = open_ws(self.port, timeout=10, path="/echo/")
                sock.sendall(frame)
                if sock.recv(64) == b"\x81\x06ready?":
                    sock.close()
                    return
                sock.close()
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not echo within {timeout}s:\n{self.output()}")

    def pids(self) -> dict[str, int]:
        """Every server process, by role (children of the servers included)."""
        found = {}
        for (role, _), proc in zip(self.logs, self.procs, strict=True):
            found[role] = proc.pid
            for child in children(proc.pid):
                found[f"{role} child {child}"] = child
        if self.redis is not None and self.redis.proc is not None:
            found["redis-server"] = self.redis.proc.pid
        return found

    def cpu(self) -> float:
        return sum(cpu_seconds(pid) or 0.0 for pid in self.pids().values())

    def stop(self) -> None:
        for proc in reversed(self.procs):  # the gateway before its worker
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.redis is not None:
            self.redis.cleanup()
        if self.ipc_dir is not None:
            shutil.rmtree(self.ipc_dir, ignore_errors=True)


# -- the client -----------------------------------------------------------------------------


def round_trips(port: int, clients: int, duration: float, size: int = 32) -> list[float]:
    """Each connection sends, waits for its echo, sends again; every round trip in seconds."""
    frame = masked_frame(0x1, b"e" * size)
    expected = 2 + size
    socks = [open_ws(port, path="/echo/") for _ in range(clients)]
    sel = selectors.DefaultSelector()
    got: dict[socket.socket, int] = {}
    sent_at: dict[socket.socket, float] = {}
    for sock in socks:
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ)
        got[sock] = 0
    latencies: list[float] = []
    perf = time.perf_counter
    for sock in socks:
        sent_at[sock] = perf()
        sock.send(frame)
    end = perf() + duration
    while perf() < end:
        for key, _ in sel.select(0.5):
            sock = key.fileobj
            n = got[sock] + len(sock.recv(65536))
            if n >= expected:  # one message in flight: this is its echo
                now = perf()
                latencies.append(now - sent_at[sock])
                n -= expected
                sent_at[sock] = now
                sock.send(frame)
            got[sock] = n
    sel.close()
    for sock in socks:
        sock.close()
    return latencies


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(served: Served, clients: int, duration: float) -> dict[str, Any]:
    cpu0, busy0, me0, t0 = served.cpu(), machine_busy(), time.process_time(), time.monotonic()
    lat = round_trips(served.port, clients, duration)
    elapsed = time.monotonic() - t0
    cpu, busy, me = served.cpu() - cpu0, machine_busy() - busy0, time.process_time() - me0
    return {
        "n": len(lat),
        "rate": len(lat) / elapsed,
        "cpu_us": cpu / max(len(lat), 1) * 1e6,
        "server_cores": cpu / elapsed,
        "client_cores": me / elapsed,
        "other_cores": max(busy - cpu - me, 0.0) / elapsed,
        "lat": lat,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one short round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--concurrency", default="1,50", help="connections, comma-separated")
    parser.add_argument("--servers", default=",".join(SERVERS))
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration = 1, 2.0
    levels = [int(c) for c in args.concurrency.split(",") if c]
    names = [n for n in args.servers.split(",") if n]

    served: dict[str, Served] = {}
    runs: dict[tuple[str, int], list[dict[str, float]]] = {}
    try:
        for name in names:
            served[name] = Served(name)
            round_trips(served[name].port, 4, 1.0)  # warm up
        print("server processes counted:")
        for name, s in served.items():
            print(f"  {name:12s} " + ", ".join(f"{r} {p}" for r, p in s.pids().items()))
        for rnd in range(args.rounds):
            for clients in levels:
                for name, s in served.items():
                    r = measure(s, clients, args.duration)
                    runs.setdefault((name, clients), []).append(r)
                    print(
                        f"  round {rnd + 1} c={clients:<3d} {name:12s} "
                        f"p50 {pct(r['lat'], 0.5) * 1e6:6.0f} µs  {r['rate']:7.0f} msg/s  "
                        f"{r['cpu_us']:5.0f} µs CPU/msg  others {r['other_cores']:.2f} cores",
                        flush=True,
                    )
    finally:
        for s in served.values():
            s.stop()
    for name, s in served.items():  # a server that misbehaved says so in its log
        bad = [line for line in s.output().splitlines() if "Traceback" in line or "ERROR" in line]
        if bad:
            print(f"  {name}: {len(bad)} error line(s) in its log, e.g. {bad[0][:150]}")
    report(runs, names, levels, args)


def report(runs, names: list[str], levels: list[int], args: argparse.Namespace) -> None:
    print()
    print(
        f"WebSocket echo round trip (32 B text, AsyncWebsocketConsumer), {args.rounds} x "
        f"{args.duration:g}s per server and concurrency; latencies pooled over the rounds"
    )
    print(
        f"{'':14s}{'conns':>6s}{'p50 µs':>9s}{'p99 µs':>9s}{'msgs/s':>9s}{'CPU µs/msg':>12s}"
        f"{'server cores':>14s}{'client':>8s}{'others':>8s}"
    )
    summary: dict[tuple[str, int], dict[str, float]] = {}
    for clients in levels:
        for name in names:
            rs = runs[(name, clients)]
            lat = [v for r in rs for v in r["lat"]]
            n = sum(r["n"] for r in rs)
            m = summary[(name, clients)] = {
                "p50": pct(lat, 0.5) * 1e6,
                "p99": pct(lat, 0.99) * 1e6,
                "rate": sorted(r["rate"] for r in rs)[len(rs) // 2],
                "cpu": sum(r["cpu_us"] * r["n"] for r in rs) / max(n, 1),
                "server": sum(r["server_cores"] for r in rs) / len(rs),
                "client": sum(r["client_cores"] for r in rs) / len(rs),
                "others": sum(r["other_cores"] for r in rs) / len(rs),
            }
            print(
                f"{name:14s}{clients:6d}{m['p50']:9.0f}{m['p99']:9.0f}{m['rate']:9.0f}"
                f"{m['cpu']:12.0f}{m['server']:14.2f}{m['client']:8.2f}{m['others']:8.2f}"
            )
    if "gateway" not in names:
        return
    print("\ngateway / peer (latency and CPU: lower is better; msgs/s: higher is better)")
    print(f"{'':24s}{'conns':>6s}{'p50':>8s}{'p99':>8s}{'msgs/s':>8s}{'CPU/msg':>9s}")
    for peer in (n for n in names if n != "gateway"):
        for clients in levels:
            g, p = summary[("gateway", clients)], summary[(peer, clients)]
            print(
                f"{'gateway/' + peer:24s}{clients:6d}{g['p50'] / p['p50']:7.2f}x"
                f"{g['p99'] / p['p99']:7.2f}x{g['rate'] / p['rate']:7.2f}x"
                f"{g['cpu'] / p['cpu']:8.2f}x"
            )
    print("\ntargets (issue 21), p50 round trip:")
    for clients in levels:
        g = summary[("gateway", clients)]["p50"]
        if "switchboard" in names:
            sb = summary[("switchboard", clients)]["p50"]
            met = "MET" if g <= 2 * sb else "NOT MET"
            print(
                f"  c={clients:<3d} gateway within 2x of in-process Switchboard: "
                f"{g:.0f} vs {sb:.0f} µs = {g / sb:.2f}x  {met}"
            )
        if "channels" in names:
            ch = summary[("channels", clients)]["p50"]
            met = "MET" if g < ch else "NOT MET"
            print(
                f"  c={clients:<3d} gateway faster than Channels + Daphne:         "
                f"{g:.0f} vs {ch:.0f} µs = {g / ch:.2f}x  {met}"
            )
    busy = max(m["others"] for m in summary.values())
    if busy > 0.2:
        print(f"\nnote: other processes used up to {busy:.2f} cores meanwhile; numbers skewed")


if __name__ == "__main__":
    main()
