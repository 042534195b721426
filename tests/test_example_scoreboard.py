"""The scoreboard example (examples/scoreboard) under ``python -m switchboard serve``, without a
browser: its pages, the signed stream URLs in them, the pinned htmx it loads, and the stream
itself read as raw Server-Sent Events and as WebSocket messages while the staff form scores.

The browser side (htmx swapping what arrives) is tests/test_example_scoreboard_browser.py.
"""

from __future__ import annotations

import asyncio
import html
import http.client
import http.cookiejar
import os
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core import signing
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.support.example_server import serve_example
from tests.support.htmx_assets import ASSETS

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "scoreboard"
SECRET_KEY = "scoreboard-test-secret-key"
ADMIN_PASSWORD = "scoreboard-test-password"
SCRIPT = re.compile(r"<script\b([^>]*)>", re.I)


@dataclass
class Server:
    address: str
    env: dict[str, str]

    @property
    def base(self) -> str:
        return f"http://{self.address}"


def prepared_site(tmp: Path, **env_vars: str) -> dict[str, str]:
    """The environment the example runs with in ``tmp`` (its database migrated, a staff user
    made), with ``env_vars`` on top (a layer, local htmx)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCOREBOARD_")}
    env.update(
        DJANGO_SETTINGS_MODULE="scoreboardsite.settings",  # not the suite's own settings
        SCOREBOARD_DATABASE=str(tmp / "scores.sqlite3"),
        DJANGO_SECRET_KEY=SECRET_KEY,
        DJANGO_DEBUG="0",
        PYTHONUNBUFFERED="1",
        DJANGO_SUPERUSER_PASSWORD=ADMIN_PASSWORD,
        **env_vars,
    )
    for command in (
        ["migrate", "--noinput", "-v0"],
        ["createsuperuser", "--noinput", "--username", "staff", "--email", "s@example.com"],
    ):
        subprocess.run(
            [sys.executable, "manage.py", *command], cwd=EXAMPLE, env=env, check=True, timeout=60
        )
    return env


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    """The example as it ships: the in-memory layer, htmx from the CDN (never fetched here)."""
    tmp = tmp_path_factory.mktemp("scoreboard")
    env = prepared_site(tmp)
    with serve_example(EXAMPLE, "scoreboardsite.asgi:application", env, tmp / "log") as running:
        yield Server(running.address, env)
    assert "Traceback" not in running.output, running.output


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def _attribute(page: str, name: str) -> str:
    found = re.search(rf'\b{name}="([^"]*)"', page)
    assert found, f"no {name} in the page"
    return html.unescape(found[1])


def _stream_name(url: str) -> tuple[str, dict[str, list[str]]]:
    """The stream a URL's token names (checked with the server's key), and its query."""
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    payload = signing.loads(query["stream"][0], key=SECRET_KEY, salt="switchboard.streams")
    return payload["s"], query


def _staff_session(server: Server) -> urllib.request.OpenerDirector:
    """An opener signed in as staff through the admin's login form."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    login = server.base + "/admin/login/?next=/staff/"
    page = opener.open(login, timeout=10).read().decode()
    form = {
        "csrfmiddlewaretoken": _attribute(page.split('name="csrfmiddlewaretoken"')[1], "value"),
        "username": "staff",
        "password": ADMIN_PASSWORD,
        "next": "/staff/",
    }
    with opener.open(login, urllib.parse.urlencode(form).encode(), timeout=10) as response:
        assert response.url.endswith("/staff/"), response.url
    return opener


def _post_score(opener: urllib.request.OpenerDirector, server: Server, **fields: str) -> str:
    page = opener.open(server.base + "/staff/", timeout=10).read().decode()
    token = _attribute(page.split('name="csrfmiddlewaretoken"')[1], "value")
    data = urllib.parse.urlencode({"csrfmiddlewaretoken": token, **fields}).encode()
    with opener.open(server.base + "/staff/", data, timeout=10) as response:
        return response.read().decode()


def test_the_board_links_a_signed_event_stream_and_loads_only_pinned_htmx(server):
    status, page = _get(server.base + "/")
    assert status == 200
    assert 'hx-ext="sse"' in page and 'sse-swap="score"' in page
    url = _attribute(page, "sse-connect")
    assert url.startswith("/streams/?")
    name, query = _stream_name(url)
    assert name == "scores"
    assert query["format"] == ["events"] and query["sb_transport"] == ["sse"]
    assert 'id="game-1"' in page and 'id="game-2"' in page  # the migration's fixtures

    # Only htmx and the sse extension, from the CDN, pinned, with SRI; no script of its own.
    tags = SCRIPT.findall(page)
    expected = [ASSETS["htmx"], ASSETS["sse"]]
    assert [_attribute(tag, "src") for tag in tags] == [a.cdn_url for a in expected]
    assert [_attribute(tag, "integrity") for tag in tags] == [a.integrity for a in expected]
    assert all(_attribute(tag, "crossorigin") == "anonymous" for tag in tags)
    assert page.count("</script>") == len(tags) and "hx-on" not in page


def test_the_websocket_board_links_the_same_stream_in_html_format(server):
    status, page = _get(server.base + "/ws/")
    assert status == 200
    assert 'hx-ext="ws"' in page
    url = _attribute(page, "ws-connect")
    name, query = _stream_name(url)
    assert name == "scores" and query["format"] == ["html"]
    tags = SCRIPT.findall(page)
    assert [_attribute(tag, "src") for tag in tags] == [
        ASSETS["htmx"].cdn_url,
        ASSETS["ws"].cdn_url,
    ]


def test_the_staff_page_is_for_staff_only(server):
    opener = urllib.request.build_opener(_NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as refused:
        opener.open(server.base + "/staff/", timeout=10)
    assert refused.value.code == 302
    assert refused.value.headers["location"].startswith("/admin/login/")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _read_event(response: http.client.HTTPResponse) -> dict[str, str]:
    """The next event of a text/event-stream response (multi-line data joined)."""
    fields: dict[str, str] = {}
    while True:
        line = response.readline().decode()
        assert line, "the stream ended"
        line = line.rstrip("\n")
        if not line:
            if fields:
                return fields
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(": ")
        fields[key] = fields[key] + "\n" + value if key in fields else value


def test_a_goal_from_the_staff_form_reaches_the_event_stream(server):
    _, page = _get(server.base + "/")
    connection = http.client.HTTPConnection(server.address, timeout=10)
    connection.request("GET", _attribute(page, "sse-connect"))
    response = connection.getresponse()
    try:
        assert response.status == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        while (subscribed := _read_event(response)).get("event") != "sb.subscribed":
            assert subscribed.get("event") == "sb.session", subscribed  # the transport's own
        opener = _staff_session(server)
        answer = _post_score(opener, server, game="2", side="home", status="Kick-off")
        assert re.search(r"Published: Goal for City! City \d+-\d+ Athletic", answer)

        event = _read_event(response)
        assert event["event"] == "score"
        # Its id is the position right after the one the subscription started from, so a
        # reconnecting EventSource (Last-Event-ID) resumes exactly there.
        epoch, _, offset = subscribed["id"].rpartition(":")
        assert event["id"] == f"{epoch}:{int(offset) + 1}"
        fragment = event["data"]
        # Two out-of-band swaps: the card by its id, the ticker line at the top.
        assert '<article class="game" id="game-2" hx-swap-oob="true">' in fragment
        assert "Kick-off" in fragment
        assert '<div hx-swap-oob="afterbegin:#ticker"><li id="update-' in fragment
    finally:
        connection.close()


def test_a_forged_stream_token_is_refused(server):
    _, page = _get(server.base + "/")
    url = _attribute(page, "sse-connect")
    _, query = _stream_name(url)
    forged = signing.dumps({"s": "scores"}, key="another key", salt="switchboard.streams")
    query["stream"] = [forged]
    status, body = _get(server.base + "/streams/?" + urllib.parse.urlencode(query, doseq=True))
    assert status == 403 and "stream token invalid" in body


async def test_the_websocket_gets_each_publication_as_bare_html(server):
    _, page = await asyncio.to_thread(_get, server.base + "/ws/")
    url = f"ws://{server.address}{_attribute(page, 'ws-connect')}"
    async with connect(url, origin=server.base, open_timeout=10) as ws:
        # The subscription is made as the socket is accepted; the form is posted well after.
        opener = await asyncio.to_thread(_staff_session, server)
        await asyncio.to_thread(_post_score, opener, server, game="1", status="Half time")
        fragment = await asyncio.wait_for(ws.recv(), 10)
    assert isinstance(fragment, str)
    assert fragment.startswith('<article class="game" id="game-1" hx-swap-oob="true">')
    assert "#1 · Half time" in fragment
    assert re.search(r"Half time: Rovers \d+-\d+ United", fragment)


async def test_a_websocket_from_another_site_is_refused(server):
    _, page = await asyncio.to_thread(_get, server.base + "/ws/")
    url = f"ws://{server.address}{_attribute(page, 'ws-connect')}"
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, origin="http://evil.example", open_timeout=10):
            pass
    assert refused.value.response.status_code == 403


def test_the_command_warns_when_no_page_can_hear_it(server):
    """On the in-memory layer the command's publication stays in its own process: it still
    scores (a reload shows it) but says the open pages won't see it."""
    done = subprocess.run(
        [sys.executable, "manage.py", "score", "2", "away"],
        cwd=EXAMPLE,
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "Warning: the channel layer is this process's own" in done.stderr
    assert "Published: Goal for Athletic!" in done.stdout
    assert "Goal for Athletic!" in _get(server.base + "/")[1]
