"""Processes shared by bench/transports_drops.py and bench/transports_cost.py.

* :class:`Served`: one server subprocess (``switchboard serve`` of bench/transports_site.py, or
  uvicorn serving bench/socketio_peer.py), with psutil readings of its CPU time and RSS
  (its children included).
* :func:`start_proxy`: tests/support/tcp_proxy.py in a subprocess, cutting every connection.
* :func:`publisher` (a spawned process): reliable publications through
  ``switchboard.realtime.history.publish`` on the IPC layer the server uses, so the publisher
  is never behind the proxy.
* :func:`client_group` (a spawned process): ``count`` clients of one transport
  (bench/transport_clients.py) or Socket.IO clients (bench/socketio_peer.py), driven by the
  parent through a pipe: ``("ready", subscribed)`` once each subscribed, then on ``("finish",
  target, tail)`` it waits up to ``tail`` s for every client to reach ``target`` and answers
  ``("result", summaries)``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

import psutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

PY = sys.executable
TOPIC = "feed"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Served:
    """A server subprocess on a free loopback port; its log in a temporary file."""

    def __init__(self, kind: str, ipc_path: str | None = None, **env: str) -> None:
        self.kind = kind
        self.port = free_port()
        self.log = tempfile.TemporaryFile()
        environ = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1", **env)
        environ.pop("DJANGO_SETTINGS_MODULE", None)
        if ipc_path:
            environ["BENCH_IPC_PATH"] = ipc_path
        common = ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]
        if kind == "switchboard":
            app = "bench.transports_site:application"
            cmd = [PY, "-m", "switchboard", "serve", app, *common, "--no-access-log"]
        elif kind == "socketio":
            app = "bench.socketio_peer:application"
            cmd = [PY, "-m", "uvicorn", app, *common, "--no-access-log"]
        else:
            raise ValueError(kind)
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=environ, stdout=self.log, stderr=subprocess.STDOUT
        )
        self._wait_listening()
        self.ps = psutil.Process(self.proc.pid)

    def _wait_listening(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited:\n{self.output()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.kind} not listening:\n{self.output()}") from None
                time.sleep(0.1)

    def _processes(self) -> list[psutil.Process]:
        try:
            return [self.ps, *self.ps.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu(self) -> float:
        """CPU seconds (user + system) the server used so far."""
        total = 0.0
        for proc in self._processes():
            try:
                times = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def rss(self) -> int:
        total = 0
        for proc in self._processes():
            try:
                total += proc.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return total

    def connections(self) -> int:
        """TCP connections the server holds open now (established)."""
        total = 0
        for proc in self._processes():
            try:
                found = proc.net_connections(kind="tcp")
            except psutil.NoSuchProcess:
                continue
            total += sum(1 for c in found if c.status == psutil.CONN_ESTABLISHED)
        return total

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def errors(self) -> list[str]:
        """Error and warning lines of its log (a transport session's overflow is a warning)."""
        marks = ("Traceback", "ERROR", "WARNING")
        return [ln for ln in self.output().splitlines() if any(m in ln for m in marks)]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_proxy(target_port: int, every: float, down: float) -> tuple[subprocess.Popen, int]:
    """tests/support/tcp_proxy.py in front of ``target_port``: the process and its port."""
    cmd = [PY, "-m", "tests.support.tcp_proxy", "--listen", "0"]
    cmd += ["--target", f"127.0.0.1:{target_port}"]
    if every:
        cmd += ["--cut-every", str(every), "--cut-for", str(down)]
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "listening on HOST:PORT"
    if not line.startswith("listening on"):
        proc.kill()
        raise RuntimeError(f"tcp_proxy did not start: {line!r}")
    return proc, int(line.rsplit(":", 1)[1])


def stop_proxy(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- the publisher ---------------------------------------------------------------------------


def publisher(ipc_path: str, rate: float, count: int, conn: Any) -> None:
    """``count`` publications, ``rate`` per second, to ``TOPIC``; sends back their positions."""
    os.environ["BENCH_IPC_PATH"] = ipc_path
    import bench.transports_site  # noqa: F401 - configures Django and the layer
    from switchboard.layers import get_channel_layer
    from switchboard.realtime.history import publish

    async def main() -> tuple[list[tuple[str, int]], int, float]:
        layer = get_channel_layer()
        loop = asyncio.get_running_loop()
        positions, failures = [], 0
        start = loop.time()
        for n in range(count):
            delay = start + n / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                position = await publish(TOPIC, {"n": n, "text": "x" * 64}, layer=layer)
                positions.append((position.epoch, position.offset))
            except Exception:  # noqa: BLE001 - counted: a refused publication is not a loss
                failures += 1
        elapsed = loop.time() - start
        await layer.close()
        return positions, failures, elapsed

    conn.send(asyncio.run(main()))


# -- the clients -----------------------------------------------------------------------------


def client_group(kind: str, url: str, count: int, conn: Any) -> None:
    """``count`` clients of ``kind`` ("ws", "sse", "poll", "socketio"); see the module doc."""
    try:
        asyncio.run(_group(kind, url, count, conn))
    except KeyboardInterrupt:
        pass


async def _group(kind: str, url: str, count: int, conn: Any) -> None:
    loop = asyncio.get_running_loop()
    if kind == "socketio":
        await _peer_group(url, count, conn)
        return
    from bench.transport_clients import make_client

    clients = [make_client(kind, url, TOPIC) for _ in range(count)]
    tasks = []
    for client in clients:
        tasks.append(asyncio.create_task(client.run()))
        await asyncio.sleep(0.002)  # no thundering herd on the accept queue
    waits = [asyncio.create_task(c.tally.first_sub.wait()) for c in clients]
    await asyncio.wait(waits, timeout=120)
    conn.send(("ready", sum(c.tally.first_sub.is_set() for c in clients)))
    message = await loop.run_in_executor(None, conn.recv)
    if message[0] == "finish":
        (epoch, offset), tail = message[1], message[2]
        finished = loop.time()
        for client in clients:
            client.tally.expect(epoch, offset)
        reached = [asyncio.create_task(c.tally.reached.wait()) for c in clients]
        await asyncio.wait(reached, timeout=tail)
    else:
        finished = loop.time()
    for task in tasks + waits + (reached if message[0] == "finish" else []):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    summaries = []
    for client in clients:
        summary = client.tally.summary()
        if summary["reached_at"] is not None:
            summary["reached_at"] -= finished
        summaries.append(summary)
    conn.send(("result", summaries))


async def _peer_group(url: str, count: int, conn: Any) -> None:
    from bench.socketio_peer import PeerTally, peer_client

    loop = asyncio.get_running_loop()
    tallies = [PeerTally() for _ in range(count)]
    starting = []
    for tally in tallies:
        starting.append(asyncio.create_task(peer_client(url, tally)))
        await asyncio.sleep(0.002)
    done, _ = await asyncio.wait(starting, timeout=120)
    clients = [task.result() for task in done if task.exception() is None]
    conn.send(("ready", sum(t.connected.is_set() for t in tallies)))
    message = await loop.run_in_executor(None, conn.recv)
    if message[0] == "finish":
        for tally in tallies:
            tally.last = message[1]
            if tally.seen and max(tally.seen) >= tally.last:
                tally.reached.set()
        reached = [asyncio.create_task(t.reached.wait()) for t in tallies]
        await asyncio.wait(reached, timeout=message[2])
        for task in reached:
            task.cancel()
    for task in starting:
        task.cancel()
    await asyncio.gather(
        *(asyncio.wait_for(c.disconnect(), 5) for c in clients), return_exceptions=True
    )
    conn.send(("result", [t.summary() for t in tallies]))
