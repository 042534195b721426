"""The scoreboard example (examples/scoreboard) in a real browser: pages made live by htmx's
sse and ws extensions alone, fed by ``publish_html`` from the staff form and from
``manage.py score`` in another process.

The server is ``python -m switchboard serve`` in a subprocess on the IPC layer (so the
command's publications reach it); htmx comes from the npm registry once
(tests/support/htmx_assets.py) and the example serves it from that cache, with the same
integrity hashes as its CDN default. A recorder, injected by the test before any page script
(not part of the page), notes what the page's EventSource and WebSocket receive, so the test
waits for events rather than guessing with sleeps.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import (
    MISSING,
    chromium_browsers,
    chromium_installed,
    console_errors,
    wait_for,
)
from tests.support.example_server import serve_example
from tests.support.htmx_assets import htmx_assets_or_skip
from tests.support.tcp_proxy import proxy_thread
from tests.test_example_scoreboard import ADMIN_PASSWORD, EXAMPLE, prepared_site

APPLICATION = "scoreboardsite.asgi:application"
SCREENSHOTS = Path(os.environ.get("SCOREBOARD_SCREENSHOTS", tempfile.gettempdir()))

if not chromium_installed():
    pytest.skip(MISSING, allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402

pytestmark = pytest.mark.timeout(120)

# Test instrumentation, installed before the page's own scripts: counts what every
# EventSource and WebSocket the page opens receives (the page itself has no script but htmx).
RECORDER = """
(() => {
  const live = window.__live = {sse: [], ws: []};
  const NativeEventSource = window.EventSource;
  window.EventSource = class extends NativeEventSource {
    constructor(url, init) {
      super(url, init);
      const r = {url: String(url), opens: 0, errors: 0, subscribed: [], resync: [], scores: []};
      live.sse.push(r);
      this.addEventListener("open", () => r.opens++);
      this.addEventListener("error", () => r.errors++);
      this.addEventListener("sb.subscribed", (e) => r.subscribed.push(e.lastEventId));
      this.addEventListener("sb.resync", (e) => r.resync.push(e.data));
      this.addEventListener("score", (e) => r.scores.push(e.lastEventId));
    }
  };
  const NativeWebSocket = window.WebSocket;
  window.WebSocket = class extends NativeWebSocket {
    constructor(url, protocols) {
      super(url, protocols);
      const r = {url: String(url), opens: 0, messages: 0};
      live.ws.push(r);
      this.addEventListener("open", () => r.opens++);
      this.addEventListener("message", () => r.messages++);
    }
  };
})();
"""


@dataclass
class Scoreboard:
    address: str
    env: dict[str, str]

    def score(self, *args: str) -> str:
        """``manage.py score ARGS`` in a process of its own; what it printed."""
        done = subprocess.run(
            [sys.executable, "manage.py", "score", *args],
            cwd=EXAMPLE,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "Warning" not in done.stderr, done.stderr  # the layer spans processes
        return done.stdout


@pytest.fixture(scope="module")
def scoreboard(tmp_path_factory) -> Iterator[Scoreboard]:
    assets = htmx_assets_or_skip()
    tmp = tmp_path_factory.mktemp("scoreboard")
    env = prepared_site(tmp, SCOREBOARD_IPC_PATH=str(tmp / "ipc"), SCOREBOARD_HTMX_DIR=str(assets))
    with serve_example(EXAMPLE, APPLICATION, env, tmp / "server.log") as server:
        yield Scoreboard(server.address, env)
    assert "Traceback" not in server.output, server.output


@pytest.fixture
def open_browser(tmp_path) -> Iterator[Any]:
    def open_recorded(name: str) -> Any:
        driver = launch(name)
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORDER})
        return driver

    with chromium_browsers(tmp_path, window_size=(900, 800)) as launch:
        yield open_recorded


def _live(driver: Any) -> dict[str, list[dict[str, Any]]]:
    return driver.execute_script("return window.__live")


def _text(driver: Any, selector: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, selector).text


def _score(driver: Any, game: int, side: str) -> int:
    return int(_text(driver, f"#game-{game} .{side}-score"))


def _ticker(driver: Any) -> list[str]:
    return [li.text for li in driver.find_elements(By.CSS_SELECTOR, "#ticker li")]


def _assert_htmx_only(driver: Any, extension: str) -> None:
    """The page runs htmx and one extension, served here, and no script of its own."""
    sources = driver.execute_script(
        "return [...document.scripts].map((s) => [s.getAttribute('src'), s.integrity])"
    )
    assert [src for src, _ in sources] == ["/htmx/htmx.min.js", f"/htmx/{extension}.min.js"]
    assert all(integrity.startswith("sha384-") for _, integrity in sources)
    assert driver.execute_script("return typeof htmx.version") == "string"


def _open_sse_board(driver: Any, base: str) -> dict[str, Any]:
    """Loads the SSE board; waits until its stream is subscribed. The EventSource's record."""
    driver.get(base + "/")
    wait_for(
        driver, lambda d: _live(d)["sse"] and _live(d)["sse"][0]["subscribed"], "sb.subscribed"
    )
    _assert_htmx_only(driver, "sse")
    return _live(driver)["sse"][0]


def _sign_in_to_staff(driver: Any, base: str) -> None:
    driver.get(base + "/staff/")  # redirected to the admin's login page
    driver.find_element(By.ID, "id_username").send_keys("staff")
    driver.find_element(By.ID, "id_password").send_keys(ADMIN_PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait_for(driver, lambda d: d.find_elements(By.ID, "score-form"), "the staff form")


def test_the_staff_form_updates_an_open_board_over_sse(scoreboard, open_browser):
    base = f"http://{scoreboard.address}"
    reader, staff = open_browser("reader"), open_browser("staff")
    record = _open_sse_board(reader, base)
    assert "format=events" in record["url"] and "sb_transport=sse" in record["url"]
    home, away = _score(reader, 1, "home"), _score(reader, 1, "away")

    _sign_in_to_staff(staff, base)
    staff.find_element(By.ID, "status").send_keys("Second half")
    staff.find_element(By.ID, "goal-home").click()
    wait_for(staff, lambda d: "Published: Goal for Rovers!" in d.page_source, "the staff's note")

    wait_for(reader, lambda d: _score(d, 1, "home") == home + 1, "the goal on the board")
    assert _text(reader, "#game-1 .status").endswith("Second half")
    assert _ticker(reader)[0].endswith(f"Goal for Rovers! Rovers {home + 1}-{away} United")
    reader.save_screenshot(str(SCREENSHOTS / "scoreboard-sse.png"))
    staff.save_screenshot(str(SCREENSHOTS / "scoreboard-staff.png"))

    # Exactly one publication reached the page, swapped out of band: the card and the
    # ticker line, and nothing else (the listener swaps nothing itself).
    record = _live(reader)["sse"][0]
    assert len(record["scores"]) == 1 and record["resync"] == []
    assert reader.find_element(By.ID, "listener").get_attribute("innerHTML") == ""
    assert len(reader.find_elements(By.CSS_SELECTOR, "#game-1")) == 1
    assert console_errors(reader) == []


def test_the_websocket_board_updates_from_the_command_line(scoreboard, open_browser):
    reader = open_browser("ws-reader")
    reader.get(f"http://{scoreboard.address}/ws/")
    wait_for(reader, lambda d: _live(d)["ws"] and _live(d)["ws"][0]["opens"], "the WebSocket")
    _assert_htmx_only(reader, "ws")
    assert "format=html" in _live(reader)["ws"][0]["url"]
    home, away = _score(reader, 2, "home"), _score(reader, 2, "away")
    # The command starts a whole Django process: the socket's subscription, made as it
    # opened, is long in place when the publication comes.
    assert "Published: Goal for Athletic!" in scoreboard.score("2", "away", "--status", "Late")

    wait_for(reader, lambda d: _score(d, 2, "away") == away + 1, "the goal on the board")
    assert _text(reader, "#game-2 .status").endswith("Late")
    assert _ticker(reader)[0].endswith(f"Goal for Athletic! City {home}-{away + 1} Athletic")
    assert _live(reader)["ws"][0]["messages"] == 1
    reader.save_screenshot(str(SCREENSHOTS / "scoreboard-ws.png"))
    assert console_errors(reader) == []


def test_an_sse_board_gets_what_it_missed_while_cut_off(scoreboard, open_browser):
    """The connection drops; a goal is scored while the browser cannot reach the server; the
    browser's own EventSource reconnect sends Last-Event-ID and the server replays the goal."""
    host, port = scoreboard.address.split(":")
    reader = open_browser("cut-off")
    with proxy_thread(host, int(port)) as proxy:
        record = _open_sse_board(reader, f"http://127.0.0.1:{proxy.port}")
        home = _score(reader, 1, "home")
        scoreboard.score("1", "home")
        wait_for(reader, lambda d: _score(d, 1, "home") == home + 1, "the first goal")
        seen = _live(reader)["sse"][0]["scores"][-1]  # that goal's event id

        # Cut, and refuse every connection until told otherwise: the browser sees the end of
        # its stream and keeps trying to reconnect (EventSource's own retry, every ~3 s).
        proxy.refuse_for(600)
        wait_for(reader, lambda d: _live(d)["sse"][0]["errors"] >= 1, "the drop noticed")
        away = _score(reader, 1, "away")
        scoreboard.score("1", "away", "--status", "Cut off")
        proxy.refuse_for(0)  # the network is back (ends the refusal, nothing left to cut)

        wait_for(reader, lambda d: len(_live(d)["sse"][0]["subscribed"]) == 2, "the reconnect", 30)
        wait_for(reader, lambda d: _score(d, 1, "away") == away + 1, "the missed goal")
        reader.save_screenshot(str(SCREENSHOTS / "scoreboard-recovered.png"))

    record = _live(reader)["sse"]
    assert len(record) == 1  # the browser's own reconnect, not a new EventSource from htmx
    # The second subscription started where the page had stopped: its Last-Event-ID.
    assert record[0]["subscribed"][1] == seen
    assert record[0]["resync"] == []
    assert len(record[0]["scores"]) == 2  # the replayed goal, once
    assert _text(reader, "#game-1 .status").endswith("Cut off")
    assert _ticker(reader)[0].endswith(f"Goal for United! Rovers {home + 1}-{away + 1} United")
