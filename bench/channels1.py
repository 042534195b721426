"""A Channels 1 chat on Switchboard vs the same chat on the original Channels 1 stack.

The chat (bench/channels1_project: function consumers routed with route() on the path, a
Group per room, the room kept in message.channel_session, sessions in SQLite by default) is
served three ways, each in its own processes with its own redis-server, in turn in the same run:

  (a) switchboard  ``switchboard serve c1site.asgi:channel_layer`` + ``manage.py runworker``
                   (one worker process, its default threads)
  (b) modern       the same chat as an AsyncWebsocketConsumer (group_add/group_send on the
                   same Redis layer) in-process in ``switchboard serve``: the reference
  (c) channels1    Channels 1.1.8 + Daphne 1.4.2 + asgi_redis 1.4.3 on Python 3.6: ``daphne``
                   + ``manage.py runworker``; installed on first use into .cache/channels1-venv
                   (skipped, saying why, when it cannot be installed)

The load: --rooms rooms of --per-room clients each; every client sends a text, waits for that
text to come back through its room's group (every member gets it, the sender included), and
sends the next. Reported per setup: chat messages sent/s, group deliveries/s (sends x members
when nothing is lost), p50/p99 round trip, and server CPU per sent message (utime + stime from
/proc of the interface server, the worker, their children and redis-server), with a/c and a/b,
and the cores other processes on the machine used meanwhile (a busy machine skews it all).

--probe instead runs behaviour checks (bench/channels1_project/probe_client.py) on (a) and (c).

Usage: ./scripts/bench channels1 [--quick] [--rounds N] [--duration S] [--rooms N]
       [--per-room M] [--setups switchboard,modern,channels1] [--sessions db|cache]
       [--threads N] [--profile-worker FILE] [--probe]
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
PROJECT = os.path.join(ROOT, "bench", "channels1_project")

from bench.channels1_project.chat_client import ChatClients  # noqa: E402
from bench.server_ws import free_port  # noqa: E402
from tests.support.redis_servers import RedisServer  # noqa: E402

PY = sys.executable
TICKS = os.sysconf("SC_CLK_TCK")
SETUPS = ("switchboard", "modern", "channels1")
LABELS = {
    "switchboard": "(a) switchboard",
    "modern": "(b) modern",
    "channels1": "(c) channels1",
}
VENV = os.path.join(ROOT, ".cache", "channels1-venv")
# The stack and the releases of its dependencies that still run on Python 3.6.
PINS = (
    "django==1.11.29 channels==1.1.8 daphne==1.4.2 asgi_redis==1.4.3 twisted==21.7.0 "
    "autobahn==20.12.3 txaio==20.12.1 automat==20.2.0 attrs<22 zope.interface<6 incremental<22 "
    "hyperlink<22 constantly<16 cryptography<3.4 pyopenssl<21 service_identity<22 msgpack-python "
    "redis<3 typing-extensions<4.2 six idna<3.5 pyasn1<0.5 pyasn1-modules<0.3 cffi<1.16 "
    "setuptools<60 pytz pycparser<2.22 hiredis<2.1"
).split()


# -- the original stack's virtualenv ---------------------------------------------------------


def python36() -> str | None:
    pyenv = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    found = sorted(glob.glob(os.path.join(pyenv, "versions", "3.6.*", "bin", "python3.6")))
    return found[-1] if found else shutil.which("python3.6")


def old_stack_python() -> str | None:
    """The venv's interpreter, creating the venv with PINS first if needed; None (said why)
    when it cannot be had."""
    python, marker = os.path.join(VENV, "bin", "python"), os.path.join(VENV, "pins.txt")
    wanted = "\n".join(PINS) + "\n"
    if os.path.exists(marker) and os.path.exists(python):
        with open(marker) as f:
            if f.read() == wanted:
                return python
    base = python36()
    if base is None:
        print("  skipping (c): no Python 3.6 here (pyenv install 3.6.15)", flush=True)
        return None
    print(f"  creating {os.path.relpath(VENV, ROOT)} (Channels 1.1.8 stack, ~1 min)…", flush=True)
    shutil.rmtree(VENV, ignore_errors=True)
    steps = [[base, "-m", "venv", VENV], [python, "-m", "pip", "install", "-q", *PINS]]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            tail = "\n    ".join((done.stdout + done.stderr).strip().splitlines()[-8:])
            print(f"  skipping (c): `{' '.join(step[:4])} …` failed:\n    {tail}", flush=True)
            shutil.rmtree(VENV, ignore_errors=True)
            return None
    with open(marker, "w") as f:
        f.write(wanted)
    return python


# -- CPU from /proc --------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def machine_busy() -> float:
    """CPU seconds every process on the machine used so far (all cores, less idle, iowait)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / TICKS


def descendants(pid: int) -> list[int]:
    found = []
    for task in glob.glob(f"/proc/{pid}/task/*/children"):
        try:
            with open(task) as f:
                found += [int(c) for c in f.read().split()]
        except OSError:
            continue
    return found + [g for c in found for g in descendants(c)]


# -- the setups ------------------------------------------------------------------------------


class Setup:
    """One way of serving the chat: redis-server, the server, maybe a worker; ready to load."""

    def __init__(
        self,
        name: str,
        old_python: str | None = None,
        profile: str | None = None,
        probe_log: str | None = None,
        threads: int | None = None,
        sessions: str = "db",
    ) -> None:
        self.name = name
        self.port = free_port()
        self.procs: list[tuple[str, subprocess.Popen[bytes], Any]] = []
        self.redis = RedisServer(name=f"bench-c1-{name}")
        self.dir = tempfile.mkdtemp(prefix=f"sb-c1-{name}-")
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env.update(
            C1_REDIS_URL=self.redis.url,
            C1_DATABASE=os.path.join(self.dir, "db.sqlite3"),
            DJANGO_SETTINGS_MODULE="c1site.settings",
            PYTHONUNBUFFERED="1",
            C1_SESSION_ENGINE=f"django.contrib.sessions.backends.{sessions}",
        )
        if probe_log:
            env["C1_PROBE_LOG"] = probe_log
        if name == "channels1":
            # The project dir only: the repo root would make `switchboard` importable.
            env["PYTHONPATH"] = PROJECT
            assert old_python is not None
            python, daphne = old_python, os.path.join(os.path.dirname(old_python), "daphne")
            server = [daphne, "-b", "127.0.0.1", "-p", str(self.port), "c1site.asgi:channel_layer"]
        else:
            env["PYTHONPATH"] = os.pathsep.join([PROJECT, ROOT])
            python = PY
            app = "c1site.modern:application" if name == "modern" else "c1site.asgi:channel_layer"
            server = [python, "-m", "switchboard", "serve", app, "--host", "127.0.0.1"]
            server += ["--port", str(self.port), "--no-access-log", "--log-level", "warning"]
        try:
            if name != "modern":
                migrate = [python, "manage.py", "migrate", "-v", "0"]
                subprocess.run(migrate, cwd=PROJECT, env=env, check=True)
                worker = [python, "manage.py", "runworker"]
                if threads:
                    worker += ["--threads", str(threads)]
                if profile:
                    worker = [python, "-m", "cProfile", "-o", profile, *worker[1:]]
                self._start("worker", worker, env)
            self._start("server", server, env)
            self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def _start(self, role: str, cmd: list[str], env: dict[str, str]) -> None:
        log = tempfile.TemporaryFile()  # a file, not a pipe nobody reads
        proc = subprocess.Popen(cmd, cwd=PROJECT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append((role, proc, log))

    def output(self) -> str:
        text = []
        for role, _, log in self.procs:
            log.seek(0)
            text.append(f"--- {role}\n" + log.read().decode(errors="replace")[-3000:])
        return "\n".join(text)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until a chat message makes the trip through a room's group."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(p.poll() is not None for _, p, _ in self.procs):
                raise RuntimeError(f"{self.name} exited early:\n{self.output()}")
            clients = ChatClients(self.port, rooms=1, per_room=1, prefix="ready")
            try:
                clients.connect(timeout=5)
                if clients.run(0.5, stall=5.0)["sends"]:
                    return
            except OSError:
                pass
            finally:
                clients.close()
            time.sleep(0.3)
        raise RuntimeError(f"{self.name}: no chat round trip within {timeout}s:\n{self.output()}")

    def pids(self) -> dict[str, int]:
        found = {}
        for role, proc, _ in self.procs:
            found[role] = proc.pid
            for child in descendants(proc.pid):
                found[f"{role} child {child}"] = child
        if self.redis.proc is not None:
            found["redis-server"] = self.redis.proc.pid
        return found

    def cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids().values())

    def stop(self) -> None:
        for _, proc, _ in reversed(self.procs):  # the server before its worker
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.redis.cleanup()
        shutil.rmtree(self.dir, ignore_errors=True)


# -- measuring and reporting -----------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(setup: Setup, rooms: int, per_room: int, duration: float) -> dict[str, Any]:
    clients = ChatClients(setup.port, rooms, per_room)
    try:
        clients.connect()
        cpu0, busy0, me0 = setup.cpu(), machine_busy(), time.process_time()
        result = clients.run(duration)
        result["cpu"] = setup.cpu() - cpu0
        others = machine_busy() - busy0 - result["cpu"] - (time.process_time() - me0)
        result["others"] = max(others, 0.0)
    finally:
        clients.close()
    time.sleep(0.5)  # the disconnects are handled before the next load
    return result


def summarize(runs: list[dict[str, Any]]) -> dict[str, float]:
    elapsed = sum(r["elapsed"] for r in runs)
    sends = sum(r["sends"] for r in runs)
    lat = [v for r in runs for v in r["lat"]]
    return {
        "sends": sends / elapsed,
        "deliveries": sum(r["deliveries"] for r in runs) / elapsed,
        "fanout": sum(r["deliveries"] for r in runs) / max(sends, 1),
        "p50": pct(lat, 0.5) * 1e3,
        "p99": pct(lat, 0.99) * 1e3,
        "cpu_us": sum(r["cpu"] for r in runs) / max(sends, 1) * 1e6,
        "cores": sum(r["cpu"] for r in runs) / elapsed,
        "others": sum(r["others"] for r in runs) / elapsed,
        "stalled": max(r["stalled"] for r in runs),
    }


def report(summary: dict[str, dict[str, float]], args: argparse.Namespace) -> None:
    print()
    print(
        f"Channels 1 chat: {args.rooms} rooms x {args.per_room} clients, closed loop (send, "
        f"wait for your own message via the room's group); {args.rounds} x {args.duration:g}s "
        f"per setup, pooled; channel sessions: {args.sessions}"
    )
    print(
        f"{'':18s}{'sends/s':>9s}{'deliv/s':>9s}{'deliv/send':>11s}{'p50 ms':>8s}{'p99 ms':>8s}"
        f"{'CPU µs/send':>13s}{'srv cores':>11s}{'others':>8s}"
    )
    for name, m in summary.items():
        stalled = f"  ({m['stalled']:.0f} clients stalled)" if m["stalled"] else ""
        print(
            f"{LABELS[name]:18s}{m['sends']:9.0f}{m['deliveries']:9.0f}{m['fanout']:11.2f}"
            f"{m['p50']:8.1f}{m['p99']:8.1f}{m['cpu_us']:13.0f}{m['cores']:11.2f}"
            f"{m['others']:8.2f}{stalled}"
        )
    busy = max(m["others"] for m in summary.values())
    if busy > 0.2:
        print(f"(others: cores other processes used meanwhile, up to {busy:.2f}: numbers skewed)")
    a = summary.get("switchboard")
    if a is None:
        return
    print(f"\n{'':18s}{'sends/s':>9s}{'p50':>8s}{'p99':>8s}{'CPU/send':>10s}")
    for peer, label in (("channels1", "a/c"), ("modern", "a/b")):
        p = summary.get(peer)
        if p is not None:
            print(
                f"{label:18s}{a['sends'] / p['sends']:8.2f}x{a['p50'] / p['p50']:7.2f}x"
                f"{a['p99'] / p['p99']:7.2f}x{a['cpu_us'] / p['cpu_us']:9.2f}x"
            )
    c = summary.get("channels1")
    if c is not None:
        ratio = a["sends"] / c["sends"]
        met = "MET" if ratio >= 5 else "NOT MET"
        print(f"\ngoal (issue 22): (a) >= 5x (c) in throughput: {ratio:.2f}x  {met}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one short round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--rooms", type=int, default=5)
    parser.add_argument("--per-room", type=int, default=4, help="clients in each room")
    parser.add_argument("--setups", default=",".join(SETUPS))
    parser.add_argument("--profile-worker", metavar="FILE", help="cProfile (a)'s worker")
    parser.add_argument("--threads", type=int, help="(a)'s runworker --threads (its default)")
    parser.add_argument(
        "--sessions",
        choices=("db", "cache"),
        default="db",
        help="channel sessions' engine: db (Django's default; SQLite) or cache (local memory: "
        "right here only because each setup has one worker process)",
    )
    parser.add_argument("--probe", action="store_true", help="behaviour checks on (a) and (c)")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration = 1, 2.0
    names = [n for n in args.setups.split(",") if n]
    for name in names:
        if name not in SETUPS:
            parser.error(f"unknown setup {name!r} (known: {', '.join(SETUPS)})")
    old_python = old_stack_python() if "channels1" in names or args.probe else None
    if old_python is None:
        names = [n for n in names if n != "channels1"]
    if args.probe:
        from bench.channels1_project.probe_client import run_probes

        run_probes(Setup, old_python, LABELS)
        return

    setups: dict[str, Setup] = {}
    runs: dict[str, list[dict[str, Any]]] = {}
    try:
        for name in names:
            profile = args.profile_worker if name == "switchboard" else None
            threads = args.threads if name == "switchboard" else None
            setups[name] = Setup(name, old_python, profile, None, threads, args.sessions)
        print("server processes counted:")
        for name, s in setups.items():
            print(f"  {LABELS[name]:18s}" + ", ".join(f"{r} {p}" for r, p in s.pids().items()))
        for rnd in range(args.rounds):
            for name, s in setups.items():
                r = measure(s, args.rooms, args.per_room, args.duration)
                runs.setdefault(name, []).append(r)
                print(
                    f"  round {rnd + 1} {LABELS[name]:18s} {r['sends'] / r['elapsed']:7.0f} "
                    f"sends/s  p50 {pct(r['lat'], 0.5) * 1e3:6.1f} ms  "
                    f"{r['cpu'] / max(r['sends'], 1) * 1e6:6.0f} µs CPU/send  "
                    f"others {r['others'] / r['elapsed']:.2f} cores",
                    flush=True,
                )
    finally:
        for s in setups.values():
            s.stop()
    for name, s in setups.items():  # a setup that misbehaved says so in its log
        bad = [line for line in s.output().splitlines() if "Traceback" in line or "ERROR" in line]
        if bad:
            print(f"  {LABELS[name]}: {len(bad)} error line(s) in its logs, e.g. {bad[0][:150]}")
    report({name: summarize(rs) for name, rs in runs.items()}, args)


if __name__ == "__main__":
    main()
