"""Autobahn|Testsuite fuzzing client (cases 1-10) against ``switchboard serve`` echoing messages.

The tool is ../shared/tools/autobahn next to the checkout (or $AUTOBAHN); it needs a CPython 2.7
(pyenv, or $PY27) and caches its own venv. It is part of the test environment: a missing tool is
a failure, not a skip.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOL = Path(os.environ.get("AUTOBAHN", ROOT.parent / "shared" / "tools" / "autobahn"))
SUMMARY = re.compile(
    r"autobahn: (\d+) OK, (\d+) NON-STRICT, (\d+) INFORMATIONAL, (\d+) UNIMPLEMENTED, (\d+) FAILED"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"server exited: {proc.stderr.read().decode()[-2000:]}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"server not listening on {port} after {timeout}s")


def test_autobahn_fuzzing_client_cases_1_to_10(tmp_path: Path) -> None:
    assert TOOL.is_file(), f"Autobahn tool not found at {TOOL} (set AUTOBAHN=/path/to/autobahn)"
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "switchboard", "serve", "bench.apps:ws_echo_app"]
        + ["--host", "127.0.0.1", "--port", str(port), "--ws-max-size", str(16 * 1024 * 1024)]
        + ["--log-level", "warning"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_listening(port, server)
        run = subprocess.run(
            [str(TOOL), f"ws://127.0.0.1:{port}", "1.*,2.*,3.*,4.*,5.*,6.*,7.*,8.*,10.*"]
            + [str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    output = run.stdout + run.stderr
    assert "no CPython 2.7" not in output, (
        "Autobahn needs a CPython 2.7 interpreter: install one with pyenv or set PY27\n" + output
    )
    match = SUMMARY.search(output)
    assert match, f"no Autobahn summary line in:\n{output[-3000:]}"
    ok, non_strict, informational, unimplemented, failed = map(int, match.groups())
    print(match.group(0))
    assert failed == 0, output[-3000:]
    assert unimplemented == 0
    # A server that refused every connection would also report 0 FAILED: demand real passes.
    assert ok + non_strict + informational >= 240, match.group(0)
    assert run.returncode == 0, output[-3000:]
