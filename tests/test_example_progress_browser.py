"""The progress example (examples/progress) in a real browser: headless Chromium clicks "Build
report" and watches the bar fill from the task's live progress.

Served by ``python -m switchboard serve`` in a subprocess: on the embedded default (in-memory
layer, the task runs inside the server) and on the IPC layer, where only a separate
``manage.py runworker --tasks`` process can run it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from tests.support.browser import (
    MISSING,
    chromium_browsers,
    chromium_installed,
    console_errors,
    wait_for,
)
from tests.support.example_server import serve_example
from tests.support.gateway_processes import Proc

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "progress"
APPLICATION = "progresssite.asgi:application"
SCREENSHOTS = Path(os.environ.get("PROGRESS_SCREENSHOTS", tempfile.gettempdir()))
REPORT = "Report ready: 10 sections, 2500 words."

if not chromium_installed():
    pytest.skip(MISSING, allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402

pytestmark = pytest.mark.timeout(90)

# Every value the page gives the bar, as it gives it: polling could miss short-lived ones.
RECORD_BAR = """
window.barValues = [];
new MutationObserver(() => window.barValues.push(document.getElementById("bar").value))
  .observe(document.getElementById("bar"), { attributes: true, attributeFilter: ["value"] });
"""


def _env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROGRESS_")}
    env.update(
        DJANGO_SETTINGS_MODULE="progresssite.settings",  # not the suite's own settings
        DJANGO_DEBUG="0",
        PYTHONUNBUFFERED="1",
        **settings,
    )
    return env


@pytest.fixture(scope="module")
def embedded(tmp_path_factory) -> Iterator[str]:
    """The example alone, as `runserver` would run it: no worker process."""
    logs = tmp_path_factory.mktemp("progress-embedded")
    with serve_example(EXAMPLE, APPLICATION, _env(), logs / "server.log") as server:
        yield server.address
    assert "Traceback" not in server.output, server.output


@pytest.fixture
def with_worker(tmp_path) -> Iterator[str]:
    """The example on the IPC layer, its tasks run by `manage.py runworker --tasks`."""
    env = _env(PROGRESS_IPC_PATH=str(tmp_path / "ipc"))
    worker = Proc(
        "worker",
        [sys.executable, "manage.py", "runworker", "--tasks"],
        EXAMPLE,
        env,
        tmp_path / "worker.log",
    )
    try:
        worker.wait_for("Running worker for")
        with serve_example(EXAMPLE, APPLICATION, env, tmp_path / "server.log") as server:
            yield server.address
        assert "Traceback" not in server.output, server.output
        assert worker.stop() == 0, worker.output()
        assert "Traceback" not in worker.output(), worker.output()
    finally:
        worker.close()


@pytest.fixture
def browser(tmp_path) -> Iterator[Any]:
    with chromium_browsers(tmp_path) as open_browser:
        yield open_browser("visitor")


def _text(driver: Any, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).text


def _build_and_watch(driver: Any, address: str, name: str) -> list[float]:
    """Loads the page, clicks the button, waits for the report; the bar's values on the way."""
    driver.get(f"http://{address}/")
    driver.execute_script(RECORD_BAR)
    driver.find_element(By.ID, "start").click()

    def midway(driver: Any) -> bool:
        return 0.3 <= driver.execute_script("return document.getElementById('bar').value") < 1

    wait_for(driver, midway, "the bar past 30 %")
    assert not driver.find_element(By.ID, "start").is_enabled()  # one build at a time
    assert _text(driver, "message").startswith("Step ")
    driver.save_screenshot(str(SCREENSHOTS / f"progress-{name}-running.png"))

    wait_for(driver, lambda d: _text(d, "result") == REPORT, "the report", timeout=30)
    driver.save_screenshot(str(SCREENSHOTS / f"progress-{name}-done.png"))
    values = driver.execute_script("return window.barValues")
    bar = driver.find_element(By.ID, "bar")
    assert float(bar.get_attribute("value")) == float(bar.get_attribute("max")) == 1
    assert _text(driver, "percent") == "100 %"
    assert driver.find_element(By.ID, "start").is_enabled()
    assert not driver.find_element(By.ID, "error").is_displayed()
    assert console_errors(driver) == []
    return values


def test_the_bar_fills_step_by_step_with_no_worker_process(embedded, browser):
    values = _build_and_watch(browser, embedded, "embedded")
    assert values == sorted(values), values  # never backwards
    assert any(0 < value < 1 for value in values), values
    assert values[-1] == 1

    # The page keeps the task's id in its address: a reload gets the last state again (the
    # progress topic keeps one publication), not a fresh bar.
    assert "?task=" in browser.current_url
    browser.refresh()
    wait_for(browser, lambda d: _text(d, "result") == REPORT, "the report after a reload")
    assert browser.find_element(By.ID, "bar").get_attribute("value") == "1"


def test_the_bar_fills_from_a_separate_worker_on_the_ipc_layer(with_worker, browser):
    values = _build_and_watch(browser, with_worker, "ipc")
    assert values == sorted(values), values
    assert any(0 < value < 1 for value in values), values
    assert values[-1] == 1


async def _subscribe(address: str, topic: str) -> dict[str, Any]:
    origin = f"http://{address}"
    async with connect(f"ws://{address}/ws/progress/", origin=origin, open_timeout=10) as ws:
        await ws.send(json.dumps({"sb": "sub", "topic": topic}))
        return json.loads(await asyncio.wait_for(ws.recv(), 10))


@pytest.mark.parametrize(
    "topic",
    ["chat", "task.", "task.short", "task." + "a" * 33, "task.../../" + "a" * 26],
)
async def test_the_socket_allows_task_topics_only(embedded, topic):
    assert await _subscribe(embedded, topic) == {
        "sb": "error",
        "error": "subscribe refused",
        "topic": topic,
    }
    allowed = await _subscribe(embedded, "task." + "a1B2" * 8)
    assert allowed["sb"] == "subscribed"
