"""The native Django HTTP path as served: requests that compute take turns in the pool (one
at a time; one waiting on I/O lets the next in), ``manage.py runserver`` and the live server
on the native path, and processes that exit although a request never ends.

Real servers in subprocesses (``switchboard serve``, ``python -m django runserver``) or a real
live-server thread, spoken to with real sockets.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.test import override_settings

from switchboard.testing import SwitchboardLiveServerTestCase
from tests.sites.django_site.serving import ROOT, _free_port, _wait_listening, site_env
from tests.support.http_status import get_status
from tests.test_django_native_http import ROUTER_APP, get_json, serve, site_dir  # noqa: F401, I001

STATIC_DIR = Path(__file__).parent / "sites" / "live" / "static"
ADMIN_CSS = "/static/admin/css/base.css"  # django.contrib.admin's, through the finders


def _hammer(port: int, path: str, clients: int = 8, each: int = 30) -> None:
    def client(_: int) -> None:
        for _ in range(each):
            get_json(port, path)

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))


# --- one request computes at a time; one that waits lets the next in --------------------------


def test_requests_that_compute_take_turns(site_dir: Path) -> None:  # noqa: F811
    # Eight clients at once, four pool threads, views that compute for 20 ms (ten looks from
    # the loop): the threads take turns, so the view never runs twice at once. Two at once
    # would only share the GIL (and the locks Django takes per call): see WSGIAdapter.
    # "At most 2": a thread the OS left unscheduled (with its whole process) for most of a
    # 2 ms look passes for waiting on a busy machine.
    with serve(site_dir, ROUTER_APP, "--threads", "4") as site:
        get_json(site.port, "/native/overlap/max/")
        _hammer(site.port, "/native/overlap/?spin=0.02", each=5)
        assert get_json(site.port, "/native/overlap/max/")["max"] <= 2


def test_without_the_bound_requests_pile_into_the_pool(site_dir: Path) -> None:  # noqa: F811
    # The measurement above can fail: with SWITCHBOARD_HTTP_CONCURRENCY = 0 it sees the pool.
    env = {"SWITCHBOARD_HTTP_CONCURRENCY": "0"}
    with serve(site_dir, ROUTER_APP, "--threads", "4", **env) as site:
        get_json(site.port, "/native/overlap/max/")
        _hammer(site.port, "/native/overlap/?spin=0.02", each=5)
        assert get_json(site.port, "/native/overlap/max/")["max"] >= 3


def test_turns_hold_with_websockets_open(site_dir: Path) -> None:  # noqa: F811
    # The WebSocket's echo keeps answering while Django computes back to back.
    from websockets.sync.client import connect

    with serve(site_dir, ROUTER_APP, "--threads", "4") as site:
        get_json(site.port, "/native/overlap/max/")
        with connect(f"ws://127.0.0.1:{site.port}/ws/echo/", open_timeout=10) as ws:
            with ThreadPoolExecutor(1) as pool:
                load = pool.submit(_hammer, site.port, "/native/overlap/?spin=0.005", 8, 20)
                echoed = 0
                while not load.done():
                    ws.send("ping")
                    assert ws.recv(timeout=5) == "ping"
                    echoed += 1
                load.result()
        assert echoed > 10
        assert get_json(site.port, "/native/overlap/max/")["max"] <= 2


def test_back_to_back_requests_stay_on_one_thread(site_dir: Path) -> None:  # noqa: F811
    # A finished request runs the next queued one in its own thread
    # (switchboard.server.wsgi.thread_pool): under steady load one thread, with one database
    # connection and warm caches, serves nearly everything, as a single-threaded WSGI server
    # would. Woken in turn, the four
    # threads would share the requests about evenly (and each keep a connection).
    from collections import Counter

    with serve(site_dir, ROUTER_APP, "--threads", "4", NATIVE_CONN_MAX_AGE="60") as site:
        get_json(site.port, "/native/query/")
        served: Counter[str] = Counter()
        lock = threading.Lock()

        def client(_: int) -> None:
            for _ in range(30):
                name = get_json(site.port, "/native/query/")["thread"]
                with lock:
                    served[name] += 1

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(client, range(8)))
        state = get_json(site.port, "/native/db-state/")
    assert served.most_common(1)[0][1] >= 0.8 * 240, served
    assert state["created"] <= 2, state


def test_views_that_block_still_run_side_by_side(site_dir: Path) -> None:  # noqa: F811
    # A request waiting on I/O gives its place up after the grace: four sleeping views
    # overlap on four threads rather than taking four times as long.
    with serve(site_dir, ROUTER_APP, "--threads", "4") as site:
        get_json(site.port, "/native/overlap/max/")
        started = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda _: get_json(site.port, "/native/overlap/?sleep=1"), range(4)))
        elapsed = time.monotonic() - started
        assert get_json(site.port, "/native/overlap/max/")["max"] == 4
    assert elapsed < 3.0  # one after the other: 4 s


# --- manage.py runserver ----------------------------------------------------------------------


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a background job inherits SIGINT ignored


@dataclass
class RunServer:
    port: int
    log_path: Path
    process: subprocess.Popen

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def runserver(where: Path, *args: str, **env: str) -> Iterator[RunServer]:
    """``python -m django runserver`` of the native test site as a process group."""
    environ = site_env(where, "tests.sites.django_native.runserver_settings", **env)
    log_path = where / f"runserver-{time.monotonic_ns()}.log"
    port = _free_port()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "django", "runserver", f"127.0.0.1:{port}", *args],
            cwd=ROOT,
            env=environ,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_default_sigint,
        )
    try:
        assert _wait_listening(port, proc), log_path.read_text(errors="replace")
        yield RunServer(port, log_path, proc)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)


def test_runserver_serves_django_on_the_native_path(site_dir: Path) -> None:  # noqa: F811
    # No ASGI_APPLICATION: Django's bare handler, wrapped in the static files handler (DEBUG).
    with runserver(site_dir, "--noreload") as server:
        whoami = get_json(server.port, "/native/whoami/")
        assert whoami["request_class"] == "_TerminatedInputRequest"  # Django's WSGI request
        assert whoami["thread"].startswith("switchboard-wsgi")
        assert get_status(server.port, ADMIN_CSS) == 200  # static files still served in DEBUG


def test_runserver_honours_the_opt_out(site_dir: Path) -> None:  # noqa: F811
    with runserver(site_dir, "--noreload", SWITCHBOARD_NATIVE_HTTP="0") as server:
        assert get_json(server.port, "/native/whoami/")["request_class"] == "ASGIRequest"
        assert get_status(server.port, ADMIN_CSS) == 200


def _send_stuck_request(port: int, where: Path) -> socket.socket:
    marker = where / "stuck-started"
    marker.unlink(missing_ok=True)
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"GET /native/stuck/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    deadline = time.monotonic() + 20
    while not marker.exists():
        assert time.monotonic() < deadline, "the stuck view never started"
        time.sleep(0.02)
    return sock


def _group_gone(process: subprocess.Popen, timeout: float) -> bool:
    """The process (reaped, not a zombie) and every other member of its group have exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        process.poll()
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_autoreloader_child_exits_on_ctrl_c_despite_a_stuck_request(
    site_dir: Path,  # noqa: F811
) -> None:
    # Under the autoreloader the server runs in a thread of the child process; Ctrl-C ends the
    # child's main thread, and the interpreter must not then wait for the pool thread that is
    # stuck in a view (nor may the child outlive the reloader, holding the port).
    with runserver(site_dir) as server:
        with _send_stuck_request(server.port, site_dir):
            os.killpg(server.process.pid, signal.SIGINT)
            assert _group_gone(server.process, 15), server.log()


def test_live_server_process_exits_despite_a_stuck_request(site_dir: Path) -> None:  # noqa: F811
    # The live server stops (its graceful shutdown gives up on the request), then the process
    # must exit: the pool thread still inside the view cannot hold the interpreter open.
    env = dict(os.environ, DJANGO_SITE_DIR=str(site_dir), PYTHONUNBUFFERED="1")
    env.pop("DJANGO_SETTINGS_MODULE", None)
    (site_dir / "stuck-started").unlink(missing_ok=True)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tests.sites.live.stuck_server"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the process did not exit: {exc.stdout!r} {exc.stderr!r}") from None
    assert done.returncode == 0, done.stderr
    assert "stopped; the view ran in switchboard-wsgi" in done.stdout


# --- SwitchboardLiveServerTestCase --------------------------------------------------------------

bare_django = override_settings(
    ROOT_URLCONF="tests.sites.live.urls", STATIC_URL="/static/", STATICFILES_DIRS=[STATIC_DIR]
)


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@bare_django
class LiveServerNativePathTests(SwitchboardLiveServerTestCase):
    """No ASGI_APPLICATION, static files on: Django's bare handler inside the static handler."""

    def test_django_views_run_on_the_native_path(self) -> None:
        status, body = _get(f"{self.live_server_url}/whoami/")
        assert status == 200
        assert json.loads(body) == {"request_class": "_TerminatedInputRequest", "native": True}
        status, body = _get(f"{self.live_server_url}/static/live-check.txt")
        assert (status, body) == (200, (STATIC_DIR / "live-check.txt").read_bytes())


@bare_django
@override_settings(SWITCHBOARD_NATIVE_HTTP=False)
class LiveServerOptOutTests(SwitchboardLiveServerTestCase):
    def test_django_views_run_on_djangos_asgi_handler(self) -> None:
        status, body = _get(f"{self.live_server_url}/whoami/")
        assert status == 200
        assert json.loads(body) == {"request_class": "ASGIRequest", "native": False}
        assert _get(f"{self.live_server_url}/static/live-check.txt")[0] == 200
