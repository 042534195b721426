"""The chat example in a real browser: headless Chromium (Selenium) against the real server.

Two browsers with their own profiles are two guests. The example is served by
``python -m switchboard serve`` in a subprocess, as ``scripts/demo`` does.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
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

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "chat"
GAP = "Connection lost — messages sent meanwhile may be missing"

if not chromium_installed():
    pytest.skip(MISSING, allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _ChatServer:
    def __init__(self, tmp_path: Path, redis_url: str | None = None, name: str = "server") -> None:
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="chatsite.settings",
            CHAT_DATABASE=str(tmp_path / "chat.sqlite3"),
            DJANGO_DEBUG="0",
            PYTHONUNBUFFERED="1",
        )
        env.pop("CHAT_REDIS_URL", None)
        if redis_url:
            env["CHAT_REDIS_URL"] = redis_url
        self.env = env
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
            cwd=EXAMPLE, env=env, check=True, timeout=60,
        )  # fmt: skip
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "switchboard", "serve", "chatsite.asgi:application"]
            + ["--host", "127.0.0.1", "--port", str(self.port)],
            cwd=EXAMPLE, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            assert self.process.poll() is None, self.log_path.read_text()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                assert time.monotonic() < deadline, "the example server did not start"
                time.sleep(0.1)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)

    def halt(self) -> None:
        """SIGTERM, as a process manager stops it; ``start()`` serves the same port again."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def stop(self) -> None:
        self.halt()
        self._log.close()


@pytest.fixture
def server(tmp_path) -> Iterator[_ChatServer]:
    chat = _ChatServer(tmp_path)
    yield chat
    chat.stop()


@pytest.fixture
def open_browser(tmp_path) -> Iterator[Callable[[str], Any]]:
    with chromium_browsers(tmp_path) as open_browser:
        yield open_browser


def _wait(driver: Any, condition: Callable[[Any], Any], what: str, timeout: float = 15) -> Any:
    return wait_for(driver, condition, what, timeout)


def _connected_as(driver: Any) -> str:
    def name(driver: Any) -> str | None:
        text = driver.find_element(By.ID, "status").text
        return text.removeprefix("Connected as ") if text.startswith("Connected as ") else None

    return _wait(driver, name, "the welcome")


def _log_lines(driver: Any) -> list[str]:
    return [p.text for p in driver.find_elements(By.CSS_SELECTOR, "#log p")]


def _say(driver: Any, text: str) -> None:
    # send_keys types character by character; set the value, then press Enter for real.
    field = driver.find_element(By.ID, "message")
    driver.execute_script("arguments[0].value = arguments[1];", field, text)
    field.send_keys(Keys.ENTER)


def _wait_for_line(driver: Any, predicate: Callable[[str], bool], what: str) -> str:
    def found(driver: Any) -> str | None:
        return next((line for line in _log_lines(driver) if predicate(line)), None)

    return _wait(driver, found, what)


# Measures the last line's text, not its box: a block keeps the container's width even when an
# unbreakable word overflows it, the text itself is what gets wider than the page.
_LAST_LINE_GEOMETRY = """
const lines = document.querySelectorAll("#log p");
const last = lines[lines.length - 1];
const range = document.createRange();
range.selectNodeContents(last);
const log = document.getElementById("log");
return {
  textWidth: range.getBoundingClientRect().width,
  viewport: document.documentElement.clientWidth,
  logScrollWidth: log.scrollWidth,
  logClientWidth: log.clientWidth,
  pageScrollWidth: document.documentElement.scrollWidth,
};
"""


def test_two_guests_chat_names_stay_long_lines_wrap_and_close_reason_shows(
    server, open_browser, tmp_path
):
    alice, bob = open_browser("alice"), open_browser("bob")
    alice.get(f"{server.url}/chat/lobby/")
    bob.get(f"{server.url}/chat/lobby/")
    alice_name, bob_name = _connected_as(alice), _connected_as(bob)
    assert alice_name.startswith("guest-") and bob_name.startswith("guest-")
    assert alice_name != bob_name

    _say(alice, "hello from alice")
    line = _wait_for_line(bob, lambda text: "hello from alice" in text, "alice's message at bob")
    assert f"{alice_name}: hello from alice" in line

    # The name lives in the session: a reload (a new socket) keeps it, on both sides.
    bob.refresh()
    assert _connected_as(bob) == bob_name
    _say(bob, "still me")
    line = _wait_for_line(alice, lambda text: "still me" in text, "bob's message after reload")
    assert f"{bob_name}: still me" in line

    long_word = "x" * 1500
    _say(alice, long_word)
    _wait_for_line(bob, lambda text: long_word in text, "the long message at bob")
    geometry = bob.execute_script(_LAST_LINE_GEOMETRY)
    assert geometry["textWidth"] <= geometry["viewport"], geometry
    assert geometry["logScrollWidth"] <= geometry["logClientWidth"], geometry
    assert geometry["pageScrollWidth"] <= geometry["viewport"], geometry

    screenshot = tmp_path / "chat-bob.png"
    assert bob.save_screenshot(str(screenshot)) and screenshot.stat().st_size > 0

    # A graceful stop closes sockets with 1001 and a reason (RFC 6455 section 7.4.1): shown.
    server.stop()
    for driver in (alice, bob):
        _wait_for_line(
            driver,
            lambda text: text == "Disconnected: server shutting down (code 1001)",
            "the close reason",
        )


def _online(driver: Any) -> list[str]:
    # Read in one script: every presence sync rebuilds the list, so element references taken
    # one by one could go stale in between.
    return driver.execute_script(
        "return [...document.querySelectorAll('#online li')].map((li) => li.dataset.user);"
    )


def test_presence_and_nothing_lost_while_one_window_is_cut_off(open_browser, tmp_path):
    """Two server processes on Redis, one window on each: they see each other online; one
    window's server dies (its network is cut) while the other keeps talking; once it is back,
    the window shows every message, in order, once."""
    from tests.support.redis_servers import RedisServer

    with RedisServer(name="chat") as redis:
        one = _ChatServer(tmp_path, redis.url, "one")
        two = _ChatServer(tmp_path, redis.url, "two")
        try:
            alice, bob = open_browser("alice"), open_browser("bob")
            alice.get(f"{one.url}/chat/lobby/")
            bob.get(f"{two.url}/chat/lobby/")
            alice_name, bob_name = _connected_as(alice), _connected_as(bob)
            for driver in (alice, bob):
                _wait(driver, lambda d: sorted(_online(d)) == sorted([alice_name, bob_name]),
                      "both names in the online list")  # fmt: skip

            _say(bob, "before the cut")
            _wait_for_line(alice, lambda text: "before the cut" in text, "the first message")
            one.kill()  # alice's server dies: her socket is gone, bob's is not
            _wait(alice, lambda d: "reconnecting" in d.find_element(By.ID, "status").text,
                  "alice noticing")  # fmt: skip
            said = [f"while away {i}" for i in range(5)]
            for text in said:
                _say(bob, text)
                _wait_for_line(bob, lambda line, text=text: text in line, "bob's own line")
            _say(alice, "typed while cut off")  # queued by switchboard.js
            one.start()

            _wait_for_line(alice, lambda text: "typed while cut off" in text, "the queued send")
            _wait_for_line(bob, lambda text: "typed while cut off" in text, "it at bob")
            expected = ["before the cut", *said, "typed while cut off"]
            for driver in (alice, bob):
                chat = driver.find_elements(By.CSS_SELECTOR, "#log p:not(.system)")
                texts = [line.text.split(": ", 1)[1] for line in chat]
                assert texts == expected, texts
            assert not alice.find_elements(By.CSS_SELECTOR, "#log p.gap")  # nothing missed
            _wait(alice, lambda d: _connected_as(d) == alice_name, "the same name again")
        finally:
            one.stop()
            two.stop()


def _screenshot(driver: Any, tmp_path: Path, name: str) -> Path:
    """Saved under $CHAT_SCREENSHOTS when set (to look at them), else in the test's tmp_path."""
    folder = Path(os.environ.get("CHAT_SCREENSHOTS") or tmp_path)
    path = folder / f"{name}.png"
    assert driver.save_screenshot(str(path)) and path.stat().st_size > 0
    return path


def test_the_pages_log_no_console_error(server, open_browser, tmp_path):
    """The index and a room, two guests chatting, leave nothing at level SEVERE in either
    browser's console: no uncaught exception in the page or in switchboard.js, no failed load."""
    alice, bob = open_browser("alice"), open_browser("bob")
    alice.get(f"{server.url}/")
    alice.find_element(By.ID, "room").send_keys("lobby", Keys.ENTER)
    _wait(alice, lambda d: d.current_url.endswith("/chat/lobby/"), "the room page")
    bob.get(f"{server.url}/chat/lobby/")
    alice_name, bob_name = _connected_as(alice), _connected_as(bob)
    for driver in (alice, bob):
        _wait(driver, lambda d: sorted(_online(d)) == sorted([alice_name, bob_name]),
              "both names in the online list")  # fmt: skip
    _say(alice, "no errors, please")
    _wait_for_line(bob, lambda text: "no errors, please" in text, "the message at bob")
    time.sleep(0.5)  # anything logged late (the favicon's request comes after the load)
    for driver in (alice, bob):
        assert console_errors(driver) == []


def _online_is_stale(driver: Any) -> bool:
    return bool(
        driver.execute_script(
            "const aside = document.getElementById('people');"
            "return aside.classList.contains('stale')"
            " && !document.getElementById('online-note').hidden"
            " && Number(getComputedStyle(document.getElementById('online')).opacity) < 0.6;"
        )
    )


def _chat_texts(driver: Any) -> list[str]:
    """The log in order: a chat line as its text, the gap divider as GAP, other notices left
    out."""
    texts = []
    lines = driver.execute_script(
        "return [...document.querySelectorAll('#log p')].map((p) => [p.className, p.textContent]);"
    )
    for classes, text in lines:
        if "gap" in classes.split():
            texts.append(GAP if text == GAP else f"gap with another text: {text}")
        elif "system" not in classes.split():
            texts.append(text.split(": ", 1)[1])
    return texts


def test_a_server_restart_greys_the_online_list_and_marks_the_gap(server, open_browser, tmp_path):
    """On the in-memory layer, history lives in the server process: after a restart on the same
    port the pages' positions belong to an epoch that is gone, and the server says it cannot
    recover them (``recovered: false``, docs/topics/realtime.md). The pages keep what they
    showed and put a divider where messages may be missing; while they are disconnected, the
    online list is greyed out with a note, and it comes back once presence is synced again."""
    alice, bob = open_browser("alice"), open_browser("bob")
    alice.get(f"{server.url}/chat/lobby/")
    bob.get(f"{server.url}/chat/lobby/")
    alice_name, bob_name = _connected_as(alice), _connected_as(bob)
    both = sorted([alice_name, bob_name])
    for driver in (alice, bob):
        _wait(driver, lambda d: sorted(_online(d)) == both, "both names in the online list")
    _say(alice, "before the restart")
    _wait_for_line(bob, lambda text: "before the restart" in text, "the first message at bob")
    for driver in (alice, bob):
        assert not _online_is_stale(driver)
        assert not driver.find_element(By.ID, "online-note").is_displayed()

    server.halt()
    for driver in (alice, bob):
        _wait(driver, _online_is_stale, "the online list greyed out")
        assert driver.find_element(By.ID, "online-note").text == "reconnecting…"
        assert sorted(_online(driver)) == both  # still shown: the last known state
    _screenshot(bob, tmp_path, "chat-disconnected")

    server.start()
    for driver in (alice, bob):
        _wait(driver, lambda d: not _online_is_stale(d), "the online list live again", 30)
        _wait(driver, lambda d: sorted(_online(d)) == both, "both names online again")
        _wait(driver, lambda d: GAP in _chat_texts(d), "the gap divider")
        assert _chat_texts(driver) == ["before the restart", GAP]  # kept, then the gap
        assert _connected_as(driver) in (alice_name, bob_name)

    _say(bob, "after the restart")
    for driver in (alice, bob):
        _wait_for_line(driver, lambda text: "after the restart" in text, "the new message")
        assert _chat_texts(driver) == ["before the restart", GAP, "after the restart"]
    _screenshot(alice, tmp_path, "chat-after-restart")
    # The only console errors are the refused reconnection attempts while the server was down.
    for driver in (alice, bob):
        errors = [e for e in console_errors(driver) if "WebSocket connection to" not in e]
        assert errors == []
