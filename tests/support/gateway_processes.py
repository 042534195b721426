"""A gateway deployment in subprocesses: ``switchboard serve --gateway`` and ``manage.py
runworker --gateway`` processes of one project, on a layer the test chooses (its own
redis-server, or an IPC directory), each logging to its own file.

Used by the gateway tests and the gateway benchmarks; not part of the package.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.support.example_server import free_port

__all__ = ["GATEWAY_SITE", "Deployment", "Proc", "redis_layers", "ipc_layers"]

REPO = Path(__file__).resolve().parents[2]
GATEWAY_SITE = REPO / "tests" / "sites" / "gateway_site"


def redis_layers(url: str, **config: Any) -> dict[str, Any]:
    return {
        "default": {
            "BACKEND": "switchboard.layers.redis.RedisChannelLayer",
            "CONFIG": {"hosts": [url], **config},
        }
    }


def ipc_layers(path: str | Path) -> dict[str, Any]:
    return {
        "default": {
            "BACKEND": "switchboard.layers.ipc.IPCChannelLayer",
            "CONFIG": {"path": str(path)},
        }
    }


class Proc:
    """One process of the deployment and its log file."""

    def __init__(self, name: str, args: list[str], cwd: Path, env: dict[str, str], log: Path):
        self.name = name
        self.log_path = log
        self._log = open(log, "wb")
        self.popen = subprocess.Popen(
            args, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 20.0, count: int = 1) -> None:
        """Until ``text`` appears ``count`` times in the log; fails with the log otherwise."""
        deadline = time.monotonic() + timeout
        while self.output().count(text) < count:
            if self.popen.poll() is not None and self.output().count(text) < count:
                raise AssertionError(
                    f"{self.name} exited ({self.popen.returncode}) before logging {text!r}:\n"
                    f"{self.output()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} never logged {text!r}:\n{self.output()}")
            time.sleep(0.05)

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)

    def wait(self, timeout: float = 20.0) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)
            raise AssertionError(
                f"{self.name} did not exit in {timeout}s:\n{self.output()}"
            ) from None

    def stop(self, timeout: float = 20.0) -> int:
        self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def close(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(5)
        self._log.close()


class Deployment:
    """Gateways and workers of ``site`` on ``layers`` (CHANNEL_LAYERS), logs under ``logs``."""

    def __init__(
        self,
        logs: Path,
        layers: dict[str, Any],
        site: Path = GATEWAY_SITE,
        application: str = "gwsite.asgi:application",
        env: dict[str, str] | None = None,
    ) -> None:
        self.logs = logs
        self.site = site
        self.application = application
        self.database = logs / "db.sqlite3"
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(site), str(REPO)]),
            "GATEWAY_CHANNEL_LAYERS": json.dumps(layers),
            "GATEWAY_DATABASE": str(self.database),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.env.pop("DJANGO_SETTINGS_MODULE", None)
        self.procs: list[Proc] = []
        self._count = 0

    def manage(self, *args: str, timeout: float = 60.0) -> str:
        """``manage.py ARGS`` to its end; its output."""
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=self.site,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, f"manage.py {' '.join(args)}:\n{done.stdout}{done.stderr}"
        return done.stdout

    def _start(self, name: str, args: list[str]) -> Proc:
        self._count += 1
        proc = Proc(name, args, self.site, self.env, self.logs / f"{self._count:02d}-{name}.log")
        self.procs.append(proc)
        return proc

    def gateway(self, *options: str, wait: bool = True) -> tuple[Proc, str]:
        """A gateway on a free port, listening (``wait``); the process and "127.0.0.1:PORT"."""
        port = free_port()
        proc = self._start(
            "gateway",
            [sys.executable, "-m", "switchboard", "serve", self.application, "--gateway"]
            + ["--host", "127.0.0.1", "--port", str(port), *options],
        )
        if wait:
            proc.wait_for("Listening on")
        return proc, f"127.0.0.1:{port}"

    def worker(self, *options: str, wait: bool = True) -> Proc:
        proc = self._start(
            "worker", [sys.executable, "manage.py", "runworker", "--gateway", *options]
        )
        if wait:  # printed once the project is set up; the gateways log when it joins
            proc.wait_for("Running worker for")
        return proc

    def close(self) -> None:
        for proc in self.procs:
            proc.close()
