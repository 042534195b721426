"""``--health-path`` (liveness) and ``--ready-path`` (readiness), through the real server in a
subprocess.

What the probes expect: Kubernetes counts a status from 200 to 399 as success and anything else
(or no answer within ``timeoutSeconds``) as failure, for liveness and readiness alike; a failing
readiness probe takes the pod out of its Services' endpoints, a failing liveness probe restarts
the container (kubernetes.io, "Configure Liveness, Readiness and Startup Probes"). Load
balancers (AWS ALB target groups, nginx's ``health_check``) read the status the same way.
Liveness must not depend on the application or its backends, or an outage of Redis would get
every pod restarted; readiness is where the backends count.
"""

from __future__ import annotations

import http.client
import time
from pathlib import Path

import httpx

from tests.server.serve_process import Serving, free_port, run_serve
from tests.support.redis_servers import RedisServer

OPS_APP = "tests.server.ops_apps:app"
READY_SITE = "tests.server.ready_site:application"


def _request(
    port: int, method: str = "GET", path: str = "/", host: str = "127.0.0.1"
) -> tuple[int, bytes, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers={"Host": host})
        response = conn.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        conn.close()


def _serve(tmp_path: Path, app: str, *args: str, **popen) -> tuple[Serving, int]:
    port = free_port()
    server = Serving(tmp_path / "err.log", app, "--port", str(port), *args, **popen)
    server.wait_for("Listening on")
    return server, port


def _until(port: int, path: str, status: int, timeout: float = 20.0) -> bytes:
    """Probe ``path`` until it answers ``status``, as a load balancer would; its body."""
    deadline = time.monotonic() + timeout
    while True:
        got, body, _ = _request(port, path=path)
        if got == status:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} still answers {got} {body!r} after {timeout}s")
        time.sleep(0.2)


def test_health_paths_are_off_by_default(tmp_path) -> None:
    server, port = _serve(tmp_path, OPS_APP)
    try:
        assert _request(port, path="/healthz")[:2] == (200, b"app saw /healthz")
        assert _request(port, path="/readyz")[:2] == (200, b"app saw /readyz")
    finally:
        server.close()


def test_liveness_is_answered_by_the_server(tmp_path) -> None:
    server, port = _serve(tmp_path, OPS_APP, "--health-path", "/healthz")
    try:
        status, body, headers = _request(port, path="/healthz")
        assert (status, body) == (200, b"ok\n")
        assert headers["content-type"] == "text/plain; charset=utf-8"
        assert headers["cache-control"] == "no-store"
        # The query does not matter; the path is matched exactly.
        assert _request(port, path="/healthz?probe=1")[:2] == (200, b"ok\n")
        assert _request(port, path="/healthz/")[:2] == (200, b"app saw /healthz/")
        assert _request(port, path="/other")[:2] == (200, b"app saw /other")
        status, body, headers = _request(port, "HEAD", "/healthz")
        assert (status, body, headers["content-length"]) == (200, b"", "3")
        status, _, headers = _request(port, "POST", "/healthz")
        assert (status, headers["allow"]) == (405, "GET, HEAD")
        # Over HTTP/2 too (prior-knowledge h2c), the same answer.
        with httpx.Client(http1=False, http2=True) as client:
            response = client.get(f"http://127.0.0.1:{port}/healthz")
            assert (response.http_version, response.status_code) == ("HTTP/2", 200)
            assert response.content == b"ok\n"
        # With no --ready-path, the readiness path is the application's.
        assert _request(port, path="/readyz")[:2] == (200, b"app saw /readyz")
    finally:
        server.close()


def test_health_path_is_matched_below_the_root_path(tmp_path) -> None:
    # ASGI: scope["path"] includes root_path, the prefix a proxy mounts the server under
    # (--root-path, or Daphne's Daphne-Root-Path header from a trusted proxy). Probes sent to
    # the server itself do not carry that prefix in their request line.
    server, port = _serve(
        tmp_path, OPS_APP, "--health-path", "/healthz", "--root-path", "/app", "--proxy-headers"
    )
    try:
        assert _request(port, path="/healthz")[:2] == (200, b"ok\n")
        assert _request(port, path="/other")[:2] == (200, b"app saw /app/other")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/healthz", headers={"Daphne-Root-Path": "/mounted"})
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"ok\n")
        conn.close()
    finally:
        server.close()


def test_readiness_runs_the_registered_checks(tmp_path) -> None:
    # tests/server/ops_apps.py registers "flag" (raises while its file exists) and "slow"
    # (never returns while its file exists).
    not_ready, slow = tmp_path / "not-ready", tmp_path / "slow"
    env = {"OPS_NOT_READY_FILE": str(not_ready), "OPS_SLOW_FILE": str(slow)}
    server, port = _serve(
        tmp_path, OPS_APP, "--ready-path", "/readyz", "--ready-timeout", "0.3", env=env
    )
    try:
        assert _request(port, path="/readyz")[:2] == (200, b"ready\n")
        not_ready.touch()
        status, body, _ = _request(port, path="/readyz")
        assert status == 503
        assert body == b"not ready\nflag: RuntimeError: the flag file says not ready\n"
        not_ready.unlink()
        assert _request(port, path="/readyz")[:2] == (200, b"ready\n")

        slow.touch()
        started = time.monotonic()
        status, body, _ = _request(port, path="/readyz")
        assert (status, body) == (503, b"not ready\nslow: no answer within 0.3s\n")
        assert time.monotonic() - started < 2.0
        slow.unlink()
        assert _request(port, path="/readyz")[:2] == (200, b"ready\n")
        assert server.stop() == 0
        # Logged once per change of state, not once per probe.
        assert server.stderr.count("Not ready: flag: RuntimeError") == 1, server.stderr
        assert server.stderr.count("Not ready: slow: no answer within 0.3s") == 1
        assert server.stderr.count("Ready again") == 2
    finally:
        server.close()


def test_readiness_follows_the_redis_channel_layer(tmp_path) -> None:
    # The Django app's check is a round trip through the channel layer: with the Redis layer,
    # readiness is Redis's reachability, while liveness stays 200 throughout.
    with RedisServer(name="ready") as redis:
        server, port = _serve(
            tmp_path,
            READY_SITE,
            "--health-path",
            "/healthz",
            "--ready-path",
            "/readyz",
            env={"READY_SITE_REDIS_URL": redis.url},
        )
        try:
            assert _request(port, path="/readyz")[:2] == (200, b"ready\n")
            redis.stop()
            status, body, _ = _request(port, path="/readyz")
            assert status == 503, body
            assert body.startswith(b"not ready\nchannel_layer: "), body
            assert _request(port, path="/healthz")[:2] == (200, b"ok\n")
            redis.start()  # the same port, as a restarted Redis
            assert _until(port, "/readyz", 200) == b"ready\n"
            assert server.stop() == 0
            assert "Not ready: channel_layer: " in server.stderr
            assert "Ready again" in server.stderr
        finally:
            server.close()


def test_health_paths_bypass_django(tmp_path) -> None:
    # ALLOWED_HOSTS is 127.0.0.1 only: a request that reached Django with another Host would
    # be refused with 400. Probes from a kubelet or a load balancer use the pod's or the
    # instance's address as Host, which is rarely in ALLOWED_HOSTS.
    with RedisServer(name="ready") as redis:
        server, port = _serve(
            tmp_path,
            READY_SITE,
            "--health-path",
            "/healthz",
            "--ready-path",
            "/readyz",
            env={"READY_SITE_REDIS_URL": redis.url},
        )
        try:
            assert _request(port, path="/", host="10.1.2.3:8000")[0] == 400
            assert _request(port, path="/")[:2] == (200, b"django saw /")
            assert _request(port, path="/healthz", host="10.1.2.3:8000")[:2] == (200, b"ok\n")
            assert _request(port, path="/readyz", host="10.1.2.3:8000")[:2] == (200, b"ready\n")
        finally:
            server.close()


def test_bad_health_paths_are_refused_on_the_command_line() -> None:
    result = run_serve("serve", OPS_APP, "--health-path", "healthz")
    assert result.returncode == 2
    assert "a health path is an absolute path such as /healthz" in result.stderr
    result = run_serve("serve", OPS_APP, "--health-path", "/h", "--ready-path", "/h")
    assert result.returncode == 2
    assert "--health-path and --ready-path must differ" in result.stderr
