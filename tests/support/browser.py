"""Headless Chromium through Selenium for the browser tests: one set of flags, a fresh profile
per browser (its own cookies: one visitor), and every browser quit at the end.

Selenium is imported only when a browser is opened, so a module can import this one and still
skip its browser tests when Chromium is missing (a skip fails the run when CI=true,
tests/conftest.py; scripts/test installs both).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
MISSING = "needs chromium and chromium-driver (apt-get; scripts/test installs them)"
BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_installed() -> bool:
    return os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)


def open_chromium(profile: str | Path, window_size: tuple[int, int] = (800, 700)) -> Any:
    """A headless Chromium using ``profile`` as its user data directory."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in BROWSER_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={window_size[0]},{window_size[1]}")
    options.add_argument(f"--user-data-dir={profile}")
    # Keep the page's console (read with console_errors): an error there is a failing page.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_script_timeout(30)
    return driver


@contextmanager
def chromium_browsers(
    profiles: Path, window_size: tuple[int, int] = (800, 700)
) -> Iterator[Callable[[str], Any]]:
    """Yields ``open(name)``: a new browser with a fresh profile under ``profiles``; all the
    browsers opened are quit on exit."""
    drivers: list[Any] = []

    def open_browser(name: str) -> Any:
        profile = tempfile.mkdtemp(prefix=f"profile-{name}-", dir=profiles)
        driver = open_chromium(profile, window_size)
        drivers.append(driver)
        return driver

    try:
        yield open_browser
    finally:
        for driver in drivers:
            driver.quit()


def wait_for(driver: Any, condition: Callable[[Any], Any], what: str, timeout: float = 20) -> Any:
    from selenium.webdriver.support.wait import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(
        condition, message=f"timed out waiting for {what}"
    )


def console_errors(driver: Any) -> list[str]:
    """The console's errors (level SEVERE: uncaught exceptions, ``console.error``, failed
    loads) since the last call: each call drains the browser's log."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
