"""The Channels 1 site's chat room page (tests/sites/classic_site) in two headless Chromium
browsers, served by ``switchboard serve c1site.asgi:channel_layer`` and one ``manage.py
runworker`` on a real redis-server: one visitor logs in through Django's login page first,
then the two talk."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.browser import (
    MISSING,
    chromium_browsers,
    chromium_installed,
    console_errors,
    wait_for,
)
from tests.support.classic_processes import ClassicDeployment, redis_layers
from tests.support.redis_servers import RedisServer

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(not chromium_installed(), reason=MISSING),
]

LOG_LINES = 'return Array.from(document.querySelectorAll("#log li"), li => li.textContent);'


def say(driver, text: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "text").send_keys(text)
    driver.find_element(By.CSS_SELECTOR, "#say button").click()


def status(driver) -> str:
    return driver.execute_script('return document.getElementById("status").textContent;')


def test_two_browsers_chat_in_a_room(tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    with RedisServer() as redis:
        deployment = ClassicDeployment(tmp_path, redis_layers(redis.url))
        try:
            deployment.migrate()
            deployment.create_users("correct horse", "ada")
            interface, address = deployment.interface()
            deployment.worker()
            with chromium_browsers(tmp_path) as open_browser:
                ada, guest = open_browser("ada"), open_browser("guest")
                # Logged in through Django's login view, which a worker runs for the
                # interface server; the session cookie then identifies ada's socket.
                ada.get(f"http://{address}/accounts/login/")
                ada.find_element(By.NAME, "username").send_keys("ada")
                ada.find_element(By.NAME, "password").send_keys("correct horse")
                ada.find_element(By.CSS_SELECTOR, "form button").click()
                wait_for(ada, lambda d: "hello ada" in d.page_source, "the logged-in index")
                for driver in (ada, guest):
                    driver.get(f"http://{address}/rooms/lobby/")
                    wait_for(driver, lambda d: status(d) == "connected", "the socket to open")

                say(ada, "hello from ada")
                for driver in (ada, guest):
                    wait_for(
                        driver,
                        lambda d: d.execute_script(LOG_LINES) == ["adahello from ada"],
                        "ada's message",
                    )
                say(guest, "hi ada")
                expected = ["adahello from ada", "anonymoushi ada"]
                for driver in (ada, guest):
                    wait_for(driver, lambda d: d.execute_script(LOG_LINES) == expected, "reply")
                guest.save_screenshot(str(tmp_path / "classic-chat-guest.png"))
                for driver in (ada, guest):
                    assert status(driver) == "connected"
                    assert console_errors(driver) == []
            assert "Error" not in interface.output()
        finally:
            deployment.close()
