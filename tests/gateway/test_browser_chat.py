"""The Channels tutorial's chat (tests/sites/tutorial_site, unchanged but for its layer) in
gateway mode, in two real browsers: the worker serving both is killed mid-conversation, and
neither page notices: their sockets stay open and the conversation goes on."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.browser import (
    MISSING,
    chromium_browsers,
    chromium_installed,
    console_errors,
    wait_for,
)
from tests.support.gateway_processes import REPO, Deployment, redis_layers
from tests.support.redis_servers import RedisServer

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not chromium_installed(), reason=MISSING),
]

TUTORIAL = REPO / "tests" / "sites" / "tutorial_site"

# Installed once the page has loaded: did its socket ever close, and is it open now?
WATCH_SOCKET = """
window.closedEvents = 0;
socket.addEventListener("close", () => { window.closedEvents += 1; });
"""
SOCKET_STATE = "return [socket.readyState, window.closedEvents];"


@pytest.fixture
def tutorial(tmp_path: Path) -> Iterator[Deployment]:
    with RedisServer() as redis:
        layers = json.dumps(redis_layers(redis.url))
        env = {"TUTORIAL_CHANNEL_LAYERS": layers, "TUTORIAL_DATABASE": str(tmp_path / "db")}
        deployed = Deployment(
            tmp_path, {}, site=TUTORIAL, application="mysite.asgi:application", env=env
        )
        try:
            yield deployed
        finally:
            deployed.close()


def say(driver, text: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "chat-message-input").send_keys(text)
    driver.find_element(By.ID, "chat-message-submit").click()


def log_of(driver) -> str:
    return driver.execute_script('return document.querySelector("#chat-log").value;')


def test_two_browsers_chat_through_a_worker_crash(tutorial: Deployment, tmp_path: Path) -> None:
    tutorial.manage("migrate", "-v0")
    gateway, address = tutorial.gateway()
    doomed = tutorial.worker()
    gateway.wait_for("joined")
    with chromium_browsers(tmp_path) as open_browser:
        ada, bob = open_browser("ada"), open_browser("bob")
        for driver in (ada, bob):
            driver.get(f"http://{address}/chat/lobby/")
            wait_for(driver, lambda d: d.execute_script("return socket.readyState") == 1, "open")
            driver.execute_script(WATCH_SOCKET)
        say(ada, "hello from ada")
        for driver in (ada, bob):
            wait_for(driver, lambda d: "hello from ada" in log_of(d), "ada's first message")

        survivor = tutorial.worker()
        gateway.wait_for("joined", count=2)
        doomed.signal(signal.SIGKILL)
        gateway.wait_for("lost")  # both connections move to the survivor...
        time.sleep(0.5)  # ... and re-join the room there before anyone speaks again

        say(bob, "bob after the crash")
        say(ada, "ada after the crash")
        for driver in (ada, bob):
            wait_for(driver, lambda d: "ada after the crash" in log_of(d), "messages after it")
            wait_for(driver, lambda d: "bob after the crash" in log_of(d), "messages after it")
        ada.save_screenshot(str(tmp_path / "ada.png"))
        for driver in (ada, bob):
            # Open all along: no close event, no error, the same socket.
            assert driver.execute_script(SOCKET_STATE) == [1, 0]
            # The tutorial ships no favicon: the browser's own request for one is not the page.
            errors = [e for e in console_errors(driver) if "/favicon.ico" not in e]
            assert errors == []
            assert log_of(driver).splitlines() == [
                "hello from ada",
                "bob after the crash",
                "ada after the crash",
            ] or log_of(driver).splitlines() == [
                "hello from ada",
                "ada after the crash",
                "bob after the crash",
            ]
        assert doomed.wait() == -signal.SIGKILL and survivor.popen.poll() is None
