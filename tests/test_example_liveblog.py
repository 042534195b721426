"""End to end: the live blog example under `python -m switchboard serve`, driven by real
Chromium windows (selenium + chromedriver) and a real WebSocket client."""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from tests.support.browser import MISSING, chromium_browsers, chromium_installed, console_errors
from tests.support.example_server import serve_example

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "liveblog"
ADMIN_PASSWORD = "liveblog-test-password"
SCREENSHOTS = Path(os.environ.get("LIVEBLOG_SCREENSHOTS", tempfile.gettempdir()))


@pytest.fixture(scope="module")
def liveblog(tmp_path_factory) -> Iterator[str]:
    tmp_path = tmp_path_factory.mktemp("liveblog")
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="liveblogsite.settings",  # not the suite's own settings
        LIVEBLOG_DATABASE=str(tmp_path / "blog.sqlite3"),
        DJANGO_DEBUG="0",
        PYTHONUNBUFFERED="1",
        DJANGO_SUPERUSER_PASSWORD=ADMIN_PASSWORD,
    )
    for command in (
        ["migrate", "--noinput", "-v0"],
        ["createsuperuser", "--noinput", "--username", "admin", "--email", "a@example.com"],
    ):
        subprocess.run(
            [sys.executable, "manage.py", *command], cwd=EXAMPLE, env=env, check=True, timeout=60
        )
    with serve_example(
        EXAMPLE, "liveblogsite.asgi:application", env, tmp_path / "server.log"
    ) as server:
        yield server.address
    assert "Traceback" not in server.output, server.output


def _wait(driver, condition, timeout: float = 10, what: str = "condition"):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition, what)


def _post_titles(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    return [el.text for el in driver.find_elements(By.CSS_SELECTOR, "#posts article h2")]


def test_a_post_saved_in_one_window_appears_in_the_other(liveblog, tmp_path):
    from selenium.webdriver.common.by import By

    if not chromium_installed():
        pytest.skip(MISSING)
    with chromium_browsers(tmp_path, window_size=(1000, 800)) as open_browser:
        editor, reader = open_browser("editor"), open_browser("reader")
        base = f"http://{liveblog}"
        reader.get(base + "/")
        _wait(
            reader,
            lambda d: d.find_element(By.ID, "status").get_attribute("data-state") == "live",
            what="reader live",
        )
        assert _post_titles(reader) == []

        # The editor signs in to the admin and saves a post there.
        editor.get(base + "/admin/login/?next=/admin/blog/post/add/")
        editor.find_element(By.ID, "id_username").send_keys("admin")
        editor.find_element(By.ID, "id_password").send_keys(ADMIN_PASSWORD)
        editor.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
        _wait(editor, lambda d: d.find_elements(By.ID, "id_title"), what="admin add form")
        editor.find_element(By.ID, "id_title").send_keys("Kick-off!")
        editor.find_element(By.ID, "id_body").send_keys("The match has started.")
        editor.find_element(By.NAME, "_save").click()
        _wait(editor, lambda d: "/admin/blog/post/" in d.current_url and "add" not in d.current_url)

        # It appears in the reader's window without a reload.
        _wait(reader, lambda d: _post_titles(d) == ["Kick-off!"], what="the post in the reader")
        body = reader.find_element(By.CSS_SELECTOR, "#posts article p").text
        assert body == "The match has started."

        # A draft saved in the admin reaches staff only: the reader never sees it.
        editor.get(base + "/admin/blog/post/add/")
        editor.find_element(By.ID, "id_title").send_keys("Secret draft")
        editor.find_element(By.ID, "id_published").click()  # untick: a draft
        editor.find_element(By.NAME, "_save").click()
        _wait(editor, lambda d: "add" not in d.current_url)

        # The editor, on the blog page, publishes over the WebSocket with the page's form.
        editor.get(base + "/")
        _wait(
            editor,
            lambda d: d.find_element(By.ID, "status").get_attribute("data-state") == "live",
            what="editor live",
        )
        assert _post_titles(editor) == ["Secret draft", "Kick-off!"]  # staff see drafts
        _wait(
            editor, lambda d: d.find_element(By.ID, "compose").is_displayed(), what="compose form"
        )
        editor.find_element(By.ID, "title").send_keys("Goal!")
        editor.find_element(By.ID, "body").send_keys("1-0 after ten minutes.")
        editor.find_element(By.ID, "publish").click()
        _wait(
            reader,
            lambda d: _post_titles(d) == ["Goal!", "Kick-off!"],
            what="the socket post in the reader",
        )
        _wait(editor, lambda d: _post_titles(d) == ["Goal!", "Secret draft", "Kick-off!"])
        reader.save_screenshot(str(SCREENSHOTS / "liveblog-reader.png"))
        assert "Secret draft" not in reader.page_source


def _staff_session_cookie(base: str) -> dict[str, str]:
    """Signs in through the admin's login form over plain HTTP; the session cookie."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(f"{base}/admin/login/", timeout=10) as page:
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.read().decode())
    assert token
    form = {"username": "admin", "password": ADMIN_PASSWORD, "csrfmiddlewaretoken": token[1]}
    opener.open(f"{base}/admin/login/", urllib.parse.urlencode(form).encode(), timeout=10).close()
    session = next(cookie for cookie in jar if cookie.name == "sessionid")
    return {"name": "sessionid", "value": session.value, "path": "/"}


def test_the_page_logs_no_console_error_for_readers_or_staff(liveblog, tmp_path):
    """The page, loaded and live, leaves nothing at level SEVERE in the browser's console:
    no uncaught exception (each stream's accept frame has no payload), no failed load."""
    from selenium.webdriver.common.by import By

    if not chromium_installed():
        pytest.skip(MISSING)
    base = f"http://{liveblog}"
    with chromium_browsers(tmp_path, window_size=(1000, 800)) as open_browser:
        browser = open_browser("console")
        for who in ("reader", "staff"):
            if who == "staff":
                browser.add_cookie(_staff_session_cookie(base))
            browser.get(base + "/")
            _wait(
                browser,
                lambda d: d.find_element(By.ID, "status").get_attribute("data-state") == "live",
                what=f"the page live for the {who}",
            )
            compose = browser.find_element(By.ID, "compose")
            _wait(browser, lambda d, c=compose, w=who: c.is_displayed() == (w == "staff"),
                  what=f"the compose form {'shown' if who == 'staff' else 'hidden'}")  # fmt: skip
            time.sleep(0.5)  # frames after the subscription's answer, and the favicon
            browser.save_screenshot(str(SCREENSHOTS / f"liveblog-console-{who}.png"))
            assert console_errors(browser) == [], who


async def test_the_socket_speaks_the_documented_frames(liveblog):
    async with connect(f"ws://{liveblog}/ws/", origin=f"http://{liveblog}") as ws:
        frames = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(3)]
        assert {"stream": "posts", "type": "accept"} in frames
        assert {"stream": "whoami", "type": "accept"} in frames
        assert {"stream": "whoami", "payload": {"username": None, "staff": False}} in frames
        await ws.send(json.dumps({"stream": "posts", "payload": {"action": "subscribe"}}))
        answer = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert answer["stream"] == "posts" and answer["payload"]["ok"] is True
        # An anonymous reader may not write.
        create = {"action": "create", "data": {"title": "spam"}}
        await ws.send(json.dumps({"stream": "posts", "payload": create}))
        refused = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert refused["payload"]["error"] == "forbidden"
    # Another site's page may not open the socket (AllowedHostsOriginValidator).
    with pytest.raises(Exception, match="403"):
        async with connect(f"ws://{liveblog}/ws/", origin="http://evil.example"):
            pass
