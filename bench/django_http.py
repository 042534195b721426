"""Django HTTP: Switchboard's native path vs Django's ASGI handler (on Switchboard, uvicorn,
Daphne) vs WSGI servers (gunicorn's sync worker, granian), and vs Django alone with no server
around it: same project (bench/django_project), same run.

Servers, one process each:
  switchboard     ``switchboard serve`` of ProtocolTypeRouter({"http": get_asgi_application()})
                  -> the native path (switchboard/integration/native_http.py)
  sb-stock        the same with SWITCHBOARD_NATIVE_HTTP=0: Django's own ASGI handler
  uvicorn         uvicorn (uvloop, httptools) serving get_asgi_application()
  daphne          Daphne serving get_asgi_application()
  gunicorn        gunicorn -w 1 -k sync serving get_wsgi_application()
  granian         granian --interface wsgi --workers 1 serving get_wsgi_application(), with
                  --blocking-threads as many as switchboard's pool (--threads, else its default)

Views: /plain/ (HttpResponse), /template/ (a template with a loop and filters), /query/ (one
ORM query on SQLite, CONN_MAX_AGE=60); startproject's middleware on all (``--views`` picks
some). wrk -t1 -cN loads one view at a time; server CPU µs per request comes from the server
process tree's utime+stime (/proc via psutil) over the wrk run, divided by the requests wrk
completed.

"django alone" (bench/django_floor.py, its own process, each round): Django's WSGIHandler
called in a loop on the environ a server builds for wrk's request, body consumed and
``close()`` called, its CPU per request. Each server's CPU per request is printed divided by
it (issue 25's target for switchboard: <= 1.3 on /plain/), and switchboard's req/s divided by
each peer's (target: >= 1.5x granian). ``--threads-sweep 1,2,4`` then runs switchboard (and
granian, if among the servers) with each pool size on /plain/, same figures.

Then WebSocket echo (bench.server_ws.bench_echo on the project's consumer) alone and while wrk
loads /plain/ in the same server process, for the native path and Django's handler.

``--echo-latency``: only the round trip of one WebSocket echo client (p50/p99/max), alone and
while wrk loads /plain/ or /spin/?ms=5 (a view computing 5 ms of CPU per request) in the same
server process: what views that hold the GIL cost the WebSockets beside them.

``--combined``: only that last part, in depth. Per round, against one server process: wrk on
/plain/ alone, WebSocket echo alone, then both at once; medians (and the spread) of each with
the ratios "both / alone", plus gunicorn's /plain/ alone as the HTTP floor, and the
WebSocket floor: switchboard's echo while wrk loads gunicorn, another process (what the
machine leaves WebSockets when HTTP does not share their interpreter; on 2 cores the load
generators take their share too). ``--env K=V``
passes settings to the servers (e.g. SWITCHBOARD_HTTP_CONCURRENCY=0) to compare.

Usage: ./scripts/bench django_http [--quick] [--rounds N] [--duration S] [--connections N]
                                   [--threads N] [--servers a,b,...] [--views /plain/,...]
                                   [--threads-sweep 1,2,4] [--combined] [--echo-latency]
                                   [--env K=V]
e.g.   ./scripts/bench django_http --quick --views /plain/ --servers switchboard,granian \\
                                   --threads-sweep 1,2,4
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import psutil

from bench.server_ws import bench_echo, masked_frame, open_ws
from switchboard.server.wsgi.thread_pool import DEFAULT_THREADS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
ROUTER = "bench.django_project.asgi:application"
BARE = "bench.django_project.asgi:django_app"
WSGI = "bench.django_project.wsgi:application"
VIEWS = ("/plain/", "/template/", "/query/")
SERVERS = ("switchboard", "sb-stock", "uvicorn", "daphne", "gunicorn", "granian")
FLOOR = "django alone"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(name: str, port: int, threads: int | None) -> tuple[list[str], dict[str, str]]:
    p = str(port)
    sb = [PY, "-m", "switchboard", "serve", ROUTER, "--port", p, "--no-access-log",
          "--log-level", "warning"]  # fmt: skip
    if threads:
        sb += ["--threads", str(threads)]
    if name == "switchboard":
        return sb, {}
    if name == "sb-stock":
        return sb, {"SWITCHBOARD_NATIVE_HTTP": "0"}
    if name == "uvicorn":
        return [PY, "-m", "uvicorn", BARE, "--port", p, "--http", "httptools", "--loop", "uvloop",
                "--no-access-log", "--log-level", "warning", "--lifespan", "off"], {}  # fmt: skip
    if name == "daphne":
        return [PY, "-m", "daphne", "-b", "127.0.0.1", "-p", p, "-v", "0", BARE], {}
    if name == "gunicorn":
        return [PY, "-m", "gunicorn", "-w", "1", "-k", "sync", "-b", f"127.0.0.1:{p}",
                "--log-level", "warning", WSGI], {}  # fmt: skip
    if name == "granian":
        # Its WSGI default is hundreds of blocking threads; switchboard's pool size is the peer.
        return [PY, "-m", "granian", "--interface", "wsgi", "--host", "127.0.0.1", "--port", p,
                "--workers", "1", "--blocking-threads", str(threads or DEFAULT_THREADS),
                "--no-access-log", "--log-level", "warning", WSGI], {}  # fmt: skip
    raise ValueError(name)


class Running:
    def __init__(self, name: str, env: dict[str, str], threads: int | None) -> None:
        self.name = name
        self.port = free_port()
        cmd, extra = command(name, self.port, threads)
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env={**env, **extra}, stdout=subprocess.DEVNULL, stderr=self.log
        )
        self.ps = psutil.Process(self.proc.pid)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                sys.exit(f"{name} exited:\n{self.log.read().decode(errors='replace')[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"GET /plain/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if s.recv(100).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        sys.exit(f"{name} did not answer on port {self.port}")

    def cpu_seconds(self) -> float:
        """utime + stime of the server and its children (gunicorn's and granian's worker)."""
        total = 0.0
        for proc in [self.ps, *self.ps.children(recursive=True)]:
            try:
                times = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wrk(port: int, path: str, duration: float, connections: int) -> tuple[float, int]:
    """(req/s, requests completed); non-2xx answers make the run worthless, so they fail it."""
    args = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s",
            f"http://127.0.0.1:{port}{path}"]  # fmt: skip
    out = subprocess.run(args, capture_output=True, text=True, timeout=duration + 60).stdout
    if "Non-2xx" in out or "Socket errors" in out and "timeout" in out:
        print(f"warning: wrk on {path}: {out.strip().splitlines()[-3:]}", file=sys.stderr)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    return (float(rate.group(1)) if rate else 0.0), (int(count.group(1)) if count else 0)


def measure_http(server: Running, path: str, duration: float, connections: int):
    wrk(server.port, path, 1, 10)  # warm up: imports, templates, DB connections
    before = server.cpu_seconds()
    rate, count = wrk(server.port, path, duration, connections)
    used = server.cpu_seconds() - before
    return rate, (used / count * 1e6 if count else float("nan"))


def ws_with_http(
    server: Running, duration: float, connections: int, clients: int, http_port: int = 0
):
    """(WS echo msg/s, /plain/ req/s), both loading the same server process at once (or wrk
    loading ``http_port``, another process, meanwhile)."""
    result: dict[str, float] = {}

    def load() -> None:
        result["http"] = wrk(http_port or server.port, "/plain/", duration + 1, connections)[0]

    thread = threading.Thread(target=load)
    thread.start()
    time.sleep(0.5)  # wrk connected and loading before the WebSocket clients start
    loaded = bench_echo(server.port, clients, duration, path="/ws")
    thread.join()
    return loaded, result.get("http", 0.0)


def echo_round_trips(port: int, duration: float) -> list[float]:
    """Milliseconds per WebSocket echo, one client, one message at a time, for ``duration``."""
    sock = open_ws(port, path="/ws")
    frame = masked_frame(0x1, b"x" * 32)
    trips: list[float] = []
    end = time.perf_counter() + duration
    try:
        while time.perf_counter() < end:
            start = time.perf_counter()
            sock.sendall(frame)
            got = 0
            while got < 34:
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("the server closed the WebSocket")
                got += len(data)
            trips.append((time.perf_counter() - start) * 1000)
    finally:
        sock.close()
    return trips


def echo_latency(server: Running, duration: float, connections: int) -> dict[str, list[float]]:
    """Echo round trips alone, then while wrk loads /plain/, then while it loads a view that
    computes for 5 ms per request (/spin/?ms=5): what a blocking view costs the WebSockets."""
    out = {"alone": echo_round_trips(server.port, duration)}
    for label, path in (("/plain/", "/plain/"), ("/spin/?ms=5", "/spin/?ms=5")):
        thread = threading.Thread(
            target=wrk, args=(server.port, path, duration + 1, connections), daemon=True
        )
        thread.start()
        time.sleep(0.5)
        out[label] = echo_round_trips(server.port, duration)
        thread.join()
    return out


def measure_ws_under_load(server: Running, duration: float, connections: int, clients: int):
    """(WS echo msg/s alone, WS msg/s with wrk on /plain/ at once, that wrk's req/s)."""
    alone = bench_echo(server.port, clients, duration, path="/ws")
    return (alone, *ws_with_http(server, duration, connections, clients))


def combined(args: argparse.Namespace, env: dict[str, str], names: list[str]) -> None:
    """HTTP alone, WebSocket alone, both at once: per server, medians over the rounds."""
    sb_names = [n for n in names if n in ("switchboard", "sb-stock")] or ["switchboard"]
    runs: dict[str, list[tuple[float, float, float, float]]] = {n: [] for n in sb_names}
    floor: list[float] = []
    split: list[tuple[float, float, float]] = []
    for r in range(args.rounds):
        # The floor: gunicorn's /plain/ alone, and the machine's share for WebSockets when
        # HTTP is in another process (switchboard's echo while wrk loads gunicorn).
        gunicorn = Running("gunicorn", env, None)
        server = Running("switchboard", env, args.threads)
        try:
            wrk(gunicorn.port, "/plain/", 1, 10)
            floor.append(wrk(gunicorn.port, "/plain/", args.duration, args.connections)[0])
            bench_echo(server.port, args.ws_clients, 1, path="/ws")
            ws = bench_echo(server.port, args.ws_clients, args.duration, path="/ws")
            ws_both, http_both = ws_with_http(
                server, args.duration, args.connections, args.ws_clients, gunicorn.port
            )
            split.append((ws, ws_both, http_both))
        finally:
            gunicorn.stop()
            server.stop()
        for name in sb_names:
            server = Running(name, env, args.threads)
            try:
                wrk(server.port, "/plain/", 1, 10)
                bench_echo(server.port, args.ws_clients, 1, path="/ws")
                http = wrk(server.port, "/plain/", args.duration, args.connections)[0]
                ws = bench_echo(server.port, args.ws_clients, args.duration, path="/ws")
                ws_both, http_both = ws_with_http(
                    server, args.duration, args.connections, args.ws_clients
                )
            finally:
                server.stop()
            runs[name].append((http, ws, http_both, ws_both))
            print(f"round {r + 1} {name:12} http {http:7,.0f} alone {http_both:7,.0f} both | "
                  f"ws {ws:7,.0f} alone {ws_both:7,.0f} both | gunicorn {floor[-1]:,.0f}",
                  file=sys.stderr)  # fmt: skip

    def spread(values: list[float]) -> str:
        return f"{statistics.median(values):7,.0f} [{min(values):,.0f}-{max(values):,.0f}]"

    extra = " ".join(args.env) or "defaults"
    print(
        f"\nHTTP (/plain/, wrk -t1 -c{args.connections}) and WebSocket echo ({args.ws_clients} "
        f"clients) alone and at once, one server process, {args.duration:g}s each, median "
        f"[min-max] of {args.rounds}; {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}; {extra}"
    )
    print(f"gunicorn -w1 sync /plain/ alone: {spread(floor)} req/s")
    ws, ws_both, http_both = ([row[i] for row in split] for i in range(3))
    ratio = [b / max(a, 1e-9) for a, b in zip(ws, ws_both, strict=True)]
    print(f"HTTP in another process (gunicorn at {spread(http_both)} req/s): switchboard WS "
          f"msg/s alone {spread(ws)}  with HTTP {spread(ws_both)}  ratio "
          f"{statistics.median(ratio):.2f}x [{min(ratio):.2f}-{max(ratio):.2f}]")  # fmt: skip
    for name, rows in runs.items():
        http, ws, http_both, ws_both = ([row[i] for row in rows] for i in range(4))
        ws_ratio = [b / max(a, 1e-9) for a, b in zip(ws, ws_both, strict=True)]
        http_ratio = [b / max(a, 1e-9) for a, b in zip(http, http_both, strict=True)]
        floor_ratio = [b / max(g, 1e-9) for g, b in zip(floor, http_both, strict=True)]
        print(f"{name}:")
        print(f"  HTTP req/s alone {spread(http)}  with WS {spread(http_both)}  "
              f"ratio {statistics.median(http_ratio):.2f}x  "
              f"with WS / gunicorn {statistics.median(floor_ratio):.2f}x")  # fmt: skip
        print(f"  WS msg/s   alone {spread(ws)}  with HTTP {spread(ws_both)}  "
              f"ratio {statistics.median(ws_ratio):.2f}x "
              f"[{min(ws_ratio):.2f}-{max(ws_ratio):.2f}]")  # fmt: skip


def django_alone(env: dict[str, str], path: str, seconds: float) -> float:
    """Django's WSGIHandler with no server: CPU µs per request (bench/django_floor.py)."""
    args = [PY, "-m", "bench.django_floor", "--path", path, "--seconds", str(seconds)]
    done = subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=seconds * 20 + 60
    )
    if done.returncode:
        sys.exit(f"django_floor failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.splitlines()[-1])["cpu_us_per_request"]


def prepare_db(env: dict[str, str]) -> None:
    subprocess.run([PY, "-m", "django", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    code = "from django.contrib.auth.models import Group; Group.objects.get_or_create(pk=1, name='bench')"  # noqa: E501
    subprocess.run([PY, "-m", "django", "shell", "-c", code], cwd=ROOT, env=env, check=True)


def pick(value: str, allowed: tuple[str, ...], what: str) -> list[str]:
    chosen = [v for v in value.split(",") if v]
    unknown = set(chosen) - set(allowed)
    if unknown:
        sys.exit(f"unknown {what} {sorted(unknown)}; choose from {allowed}")
    return chosen


Samples = dict[tuple[str, str], list[float]]


def report(
    args: argparse.Namespace, names: list[str], views: list[str], rates: Samples, cpus: Samples
) -> None:
    """The table, CPU per request over Django alone's, and switchboard's req/s over peers'."""
    med = statistics.median
    print(
        f"\nDjango HTTP, wrk -t1 -c{args.connections}, median of {args.rounds} x "
        f"{args.duration:g}s, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'view':11}" + "".join(f"{n:>20}" for n in [*names, FLOOR]) + "   (req/s | µs/req)")
    for path in views:
        cells = [f"{med(rates[n, path]):9,.0f} |{med(cpus[n, path]):6,.0f}" for n in names]
        cells.append(f"{'-':>9} |{med(cpus[FLOOR, path]):6,.0f}")
        print(f"{path:11}" + "".join(f"{c:>20}" for c in cells))
    print(f"\nserver CPU per request / {FLOOR} (target: switchboard <= 1.3 on /plain/)")
    for name in names:
        ratios = [med(cpus[name, p]) / med(cpus[FLOOR, p]) for p in views]
        print(
            f"{name:24}" + "".join(f"{p:>12} {x:5.2f}x" for p, x in zip(views, ratios, strict=True))
        )
    if "switchboard" not in names:
        return
    print("\nswitchboard req/s / peer's (target: >= 1.5x granian)")
    for peer in names:
        if peer == "switchboard":
            continue
        ratios = [med(rates["switchboard", p]) / max(med(rates[peer, p]), 1e-9) for p in views]
        print(f"switchboard / {peer:9}" + "".join(f"{p:>12} {x:5.2f}x" for p, x in
                                                 zip(views, ratios, strict=True)))  # fmt: skip


def report_sweep(sweep: list[int], names: list[str], rates: Samples, cpus: Samples) -> None:
    med = statistics.median
    floor = med(cpus[FLOOR, "/plain/"])
    print(f"\n/plain/ by pool size (--threads; granian --blocking-threads), {FLOOR} {floor:,.0f} "
          "µs/req")  # fmt: skip
    head = "".join(f"{n + ' req/s':>20}{'µs/req':>8}{'/alone':>8}" for n in names)
    print(f"{'threads':>7}{head}" + ("   switchboard/granian" if len(names) == 2 else ""))
    for t in sweep:
        row = f"{t:>7}"
        for name in names:
            rate, cpu = med(rates[name, f"t{t}"]), med(cpus[name, f"t{t}"])
            row += f"{rate:20,.0f}{cpu:8,.0f}{cpu / floor:7.2f}x"
        if len(names) == 2:
            ratio = med(rates["switchboard", f"t{t}"]) / max(med(rates["granian", f"t{t}"]), 1e-9)
            row += f"{ratio:21.2f}x"
        print(row)


def report_echo_latency(args: argparse.Namespace, env: dict[str, str]) -> None:
    trips: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        server = Running("switchboard", env, args.threads)
        try:
            bench_echo(server.port, 1, 0.5, path="/ws")
            for label, values in echo_latency(server, args.duration, args.connections).items():
                trips.setdefault(label, []).extend(values)
        finally:
            server.stop()
    print(f"\nWebSocket echo round trip (one client, one message at a time) in the server that "
          f"serves Django, wrk -c{args.connections} on the view, {args.rounds} x "
          f"{args.duration:g}s")  # fmt: skip
    print(f"{'beside':14}{'echoes':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for label, values in trips.items():
        values.sort()
        p50 = values[len(values) // 2]
        p99 = values[min(len(values) - 1, int(0.99 * len(values)))]
        print(f"{label:14}{len(values):8,}{p50:9.2f}{p99:9.2f}{values[-1]:9.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--ws-clients", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None, help="switchboard --threads")
    ap.add_argument("--servers", default=",".join(SERVERS))
    ap.add_argument("--views", default=",".join(VIEWS))
    ap.add_argument("--threads-sweep", default="", help="e.g. 1,2,4: pool sizes on /plain/")
    ap.add_argument("--quick", action="store_true", help="one round of 2 s")
    ap.add_argument("--combined", action="store_true", help="HTTP and WebSocket at once only")
    ap.add_argument(
        "--echo-latency", action="store_true", help="only: WS echo round trips beside views"
    )
    ap.add_argument("--env", action="append", default=[], help="K=V for the servers' settings")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.duration = 1, 2.0
    if not shutil.which("wrk"):
        sys.exit("wrk is required (apt-get install wrk)")
    names = pick(args.servers, SERVERS, "servers")
    views = pick(args.views, VIEWS, "views")
    sweep = [int(t) for t in args.threads_sweep.split(",") if t]
    sweep_names = [n for n in ("switchboard", "granian") if n in names] or ["switchboard"]
    tmp = tempfile.mkdtemp(prefix="bench-django-")
    env = dict(
        os.environ,
        PYTHONPATH=ROOT,
        DJANGO_SETTINGS_MODULE="bench.django_project.settings",
        BENCH_DJANGO_DB=os.path.join(tmp, "db.sqlite3"),
    )
    prepare_db(env)
    env.update(kv.split("=", 1) for kv in args.env)
    if args.combined:
        combined(args, env, names)
        return
    if args.echo_latency:
        report_echo_latency(args, env)
        return

    rates: Samples = {}
    cpus: Samples = {}
    ws: dict[str, list[tuple[float, float, float]]] = {}

    def http(rnd: int, name: str, threads: int | None, paths: list[str], key: str = "") -> None:
        """Loads each path on a fresh server; ``key`` (else the path) files the samples."""
        server = Running(name, env, threads)
        try:
            for path in paths:
                rate, cpu = measure_http(server, path, args.duration, args.connections)
                rates.setdefault((name, key or path), []).append(rate)
                cpus.setdefault((name, key or path), []).append(cpu)
                print(f"round {rnd} {name:12} {key or path:11} {rate:9,.0f} req/s "
                      f"{cpu:7,.0f} µs/req", file=sys.stderr)  # fmt: skip
            if name in ("switchboard", "sb-stock") and not key:
                got = measure_ws_under_load(
                    server, args.duration, args.connections, args.ws_clients
                )
                ws.setdefault(name, []).append(got)
                print(f"round {rnd} {name:12} ws {got[0]:,.0f} msg/s alone, {got[1]:,.0f} "
                      f"with HTTP at {got[2]:,.0f} req/s", file=sys.stderr)  # fmt: skip
        finally:
            server.stop()

    floor_views = [v for v in VIEWS if v in views or (sweep and v == "/plain/")]
    for r in range(args.rounds):
        for path in floor_views:
            cpu = django_alone(env, path, args.duration)
            cpus.setdefault((FLOOR, path), []).append(cpu)
            print(f"round {r + 1} {FLOOR:12} {path:11} {'':15} {cpu:7,.0f} µs/req", file=sys.stderr)
        for name in names:
            http(r + 1, name, args.threads, views)
        for t in sweep:
            for name in sweep_names:
                http(r + 1, name, t, ["/plain/"], key=f"t{t}")

    if names and views:
        report(args, names, views, rates, cpus)
    if sweep:
        report_sweep(sweep, sweep_names, rates, cpus)
    if ws:
        med = statistics.median
        print(f"\nWebSocket echo ({args.ws_clients} clients) in the same process as HTTP load")
        for name, runs in ws.items():
            alone, loaded, rate = (med([run[i] for run in runs]) for i in range(3))
            print(f"{name:12} {alone:9,.0f} msg/s alone   {loaded:9,.0f} msg/s with /plain/ "
                  f"at {rate:7,.0f} req/s")  # fmt: skip


if __name__ == "__main__":
    main()
