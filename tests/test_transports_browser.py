"""switchboard.js falling back to Server-Sent Events and long-polling, in real browsers.

The chat example runs under ``switchboard serve``; the browsers reach it through a loopback
proxy (tests/support/tcp_proxy.py) that answers every WebSocket upgrade with a 400, as a
corporate proxy may. The page's ``?transports=poll`` forces long-polling; ``window.chatClient``
is the page's client.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import MISSING, chromium_browsers, chromium_installed, console_errors
from tests.support.example_server import serve_example
from tests.support.tcp_proxy import ProxyThread, proxy_thread

if not chromium_installed():
    pytest.skip(MISSING, allow_module_level=True)

from tests.test_example_chat_browser import (  # noqa: E402
    GAP,
    _chat_texts,
    _connected_as,
    _online,
    _say,
    _wait,
    _wait_for_line,
)

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "chat"
SHOTS = Path("/tmp/sb/shots")
# How each transport is chosen: SSE by falling back from the refused WebSocket, polling by asking.
MODES = [("sse", ""), ("poll", "?transports=poll")]


@pytest.fixture(scope="module")
def chat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The chat example's address (host:port), served directly; one server for the module,
    each test in a room of its own."""
    tmp_path = tmp_path_factory.mktemp("chat")
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="chatsite.settings",
        CHAT_DATABASE=str(tmp_path / "chat.sqlite3"),
        DJANGO_DEBUG="0",
        PYTHONUNBUFFERED="1",
    )
    env.pop("CHAT_REDIS_URL", None)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=EXAMPLE, env=env, check=True, timeout=60,
    )  # fmt: skip
    with serve_example(EXAMPLE, "chatsite.asgi:application", env, tmp_path / "chat.log") as s:
        yield s.address


@pytest.fixture
def proxy(chat: str) -> Iterator[ProxyThread]:
    """The chat through a proxy that lets no WebSocket through."""
    host, port = chat.rsplit(":", 1)
    with proxy_thread(host, int(port), refuse_websocket=True) as proxy:
        yield proxy


@pytest.fixture
def open_browser(tmp_path: Path) -> Iterator[Callable[[str], Any]]:
    with chromium_browsers(tmp_path) as open_browser:
        yield open_browser


def _transport(driver: Any) -> str | None:
    return driver.execute_script("return window.chatClient && window.chatClient.transport")


def _both_online(drivers: list[Any], names: list[str]) -> None:
    for driver in drivers:
        _wait(driver, lambda d: sorted(set(_online(d))) == sorted(names), "both names online")


def _disconnects(driver: Any) -> int:
    """How many times the page lost an open connection (one notice in its log each)."""
    return driver.execute_script(
        "return [...document.querySelectorAll('#log p.system')]"
        ".filter((p) => p.textContent.startsWith('Disconnected:')).length;"
    )


def _tabs_of(driver: Any, name: str) -> int:
    """How many connections the presence list shows for ``name`` (its "· N tabs")."""
    return driver.execute_script(
        "const li = [...document.querySelectorAll('#online li')]"
        "  .find((li) => li.dataset.user === arguments[0]);"
        "if (!li) return 0; const m = li.textContent.match(/(\\d+) tabs/);"
        "return m ? Number(m[1]) : 1;",
        name,
    )


def _remembered(driver: Any) -> str | None:
    return driver.execute_script(
        "const url = window.chatClient.url;"
        "return sessionStorage.getItem('switchboard.transport:' + url);"
    )


@pytest.mark.parametrize(("transport", "query"), MODES)
def test_two_guests_chat_without_websockets(proxy, open_browser, transport, query):
    url = f"http://127.0.0.1:{proxy.port}/chat/{transport}-talk/{query}"
    alice, bob = open_browser("alice"), open_browser("bob")
    alice.get(url)
    bob.get(url)
    alice_name, bob_name = _connected_as(alice), _connected_as(bob)
    _both_online([alice, bob], [alice_name, bob_name])
    assert _transport(alice) == _transport(bob) == transport
    refused = 2 if transport == "sse" else 0  # each page tried a WebSocket first, or none
    assert proxy.proxy.refused_websockets == refused

    _say(alice, "hello from alice")
    line = _wait_for_line(bob, lambda text: "hello from alice" in text, "alice's line at bob")
    assert f"{alice_name}: hello from alice" in line
    _say(bob, "hello from bob")
    _wait_for_line(alice, lambda text: "hello from bob" in text, "bob's line at alice")

    # The transport that worked is remembered for the tab: a reload goes straight to it.
    assert _remembered(bob) == transport
    bob.refresh()
    assert _connected_as(bob) == bob_name
    assert _transport(bob) == transport
    assert proxy.proxy.refused_websockets == refused
    _say(bob, "after the reload")
    _wait_for_line(alice, lambda text: "after the reload" in text, "bob's line after reload")
    # The page that went away ended its session (a poll session says so on pagehide; an
    # EventSource closes with its page): bob is in the room once, not "2 tabs".
    _wait(alice, lambda d: _tabs_of(d, bob_name) == 1, "bob's old session gone", timeout=8)
    lines = ["hello from alice", "hello from bob", "after the reload"]
    for driver in (alice, bob):  # bob's from the room's history after his reload
        _wait(driver, lambda d: _chat_texts(d) == lines, "the three lines once each")

    if transport == "sse":
        SHOTS.mkdir(parents=True, exist_ok=True)
        alice.execute_script("window.scrollTo(0, 0)")
        assert alice.save_screenshot(str(SHOTS / "chat-sse.png"))
    # Nothing else in the consoles than the refused WebSocket handshakes.
    for driver in (alice, bob):
        errors = [e for e in console_errors(driver) if "WebSocket connection to" not in e]
        assert errors == []


@pytest.mark.parametrize(("transport", "query"), MODES)
def test_nothing_lost_or_repeated_across_cuts(chat, proxy, open_browser, transport, query):
    """Bob is behind the proxy, Alice is not (her WebSocket goes straight to the server):
    the proxy cuts Bob's connections, and refuses new ones for a while, as Alice talks. Bob
    ends up with every line once, in order, and can talk again."""
    alice, bob = open_browser("alice"), open_browser("bob")
    room = f"{transport}-cuts"
    alice.get(f"http://{chat}/chat/{room}/")
    bob.get(f"http://127.0.0.1:{proxy.port}/chat/{room}/{query}")
    alice_name, bob_name = _connected_as(alice), _connected_as(bob)
    _both_online([alice, bob], [alice_name, bob_name])
    assert (_transport(alice), _transport(bob)) == ("websocket", transport)

    said: list[str] = []

    def say(text: str) -> None:
        _say(alice, text)
        _wait_for_line(alice, lambda line: text in line, "alice's own line")
        said.append(text)

    say("before the cuts")
    _wait_for_line(bob, lambda text: "before the cuts" in text, "the first line at bob")
    assert proxy.cut() >= 1  # bob's stream or his pending poll at least
    for i in range(3):
        say(f"right after cut {i}")
        say(f"then {i}")
        proxy.cut()  # wherever bob is: reconnecting, or connected again
    # A longer outage, from a live connection: what is said now reaches Bob only by recovery.
    state = "return window.chatClient.state"
    _wait(bob, lambda d: d.execute_script(state) == "open", "bob connected again")
    disconnects = _disconnects(bob)
    proxy.refuse_for(1.5)
    for n in range(3):
        say(f"while refused {n}")
    _wait(bob, lambda d: _disconnects(d) > disconnects, "bob noticing the outage")
    _wait_for_line(bob, lambda text: "while refused 2" in text, "the last line at bob")
    assert _chat_texts(bob) == said
    assert GAP not in _chat_texts(bob)

    _say(bob, "bob is back")
    _wait_for_line(alice, lambda text: "bob is back" in text, "bob's line at alice")
    assert _chat_texts(bob) == [*said, "bob is back"]
    assert _transport(bob) == transport
