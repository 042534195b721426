"""Real ``switchboard serve`` processes of tests/realtime/site.py, and a JSON client for them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SiteServer:
    """One server process on its own port; ``kill()`` (SIGKILL) and ``start()`` again keep it.
    Subclasses serve another ``application`` or add ``serve`` options (``serve_options``)."""

    application = "tests.realtime.site:application"

    def __init__(self, log_dir: Path, name: str, **env: str) -> None:
        self.name = name
        self.port = free_port()
        self.log_path = log_dir / f"server-{name}.log"
        self.env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", **env)
        self.env.pop("DJANGO_SETTINGS_MODULE", None)  # site.py configures Django itself
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve_options(self) -> list[str]:
        return []

    def start(self, timeout: float = 30) -> SiteServer:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "switchboard", "serve", self.application]
                + ["--host", "127.0.0.1", "--port", str(self.port), "--no-access-log"]
                + self.serve_options(),
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, self.log()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                assert time.monotonic() < deadline, f"{self.name} did not start:\n{self.log()}"
                time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


class Client:
    """A WebSocket client speaking the realtime protocol to a :class:`SiteServer`."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    @classmethod
    async def open(cls, server: SiteServer, user: str) -> Client:
        return cls(await connect(f"{server.url}?user={user}", open_timeout=10))

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def next(self, timeout: float = 10) -> dict[str, Any]:
        return json.loads(await asyncio.wait_for(self.ws.recv(), timeout))

    async def until(self, predicate: Any, timeout: float = 10) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            frame = await self.next(max(left, 0.001))
            if predicate(frame):
                return frame

    async def publish(self, data: dict[str, Any]) -> int:
        await self.send({"publish": data})
        return (await self.until(lambda f: "published" in f))["published"]

    async def close(self) -> None:
        await self.ws.close()
