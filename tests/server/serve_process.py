"""``python -m switchboard serve ...`` as a real subprocess, its stderr kept in a file."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "switchboard", *args]


def run_serve(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """A ``switchboard`` command expected to exit by itself."""
    return subprocess.run(
        serve_command(*args), cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


class Serving:
    """A ``serve`` process; stderr goes to a file so a chatty server never blocks on a pipe."""

    def __init__(self, log_path: Path, *args: str, **popen: Any) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.update(popen.pop("env", {}))
        self.process = subprocess.Popen(
            serve_command("serve", *args),
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            **popen,
        )

    @property
    def stderr(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 20.0) -> str:
        """Stderr once ``text`` is in it (the server may still be running)."""
        deadline = time.monotonic() + timeout
        while text not in self.stderr:
            if self.process.poll() is not None and text not in self.stderr:
                raise AssertionError(f"serve exited without logging {text!r}:\n{self.stderr}")
            if time.monotonic() > deadline:
                raise AssertionError(f"serve did not log {text!r} in {timeout}s:\n{self.stderr}")
            time.sleep(0.05)
        return self.stderr

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, as a process manager stops it; the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"serve ignored SIGTERM:\n{self.stderr}") from None

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log.close()
