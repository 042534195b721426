"""switchboard.js in a real browser (headless Chromium) against real server processes.

The page and the client are served by tests/realtime/site.py under ``switchboard serve``; the
tests drive the client through Selenium and read what it reported from ``window.log``.
"""

from __future__ import annotations

import asyncio
import gzip
import re
import time
from pathlib import Path

import pytest

from tests.realtime.servers import Client, SiteServer
from tests.support.browser import MISSING, chromium_browsers, chromium_installed, wait_for

if not chromium_installed():
    pytest.skip(MISSING, allow_module_level=True)

STATIC = Path(__file__).resolve().parents[2] / "switchboard" / "static" / "switchboard"

# Loads the client into the page as window.sb, recording its events in window.log.
SETUP = """
const [url, done] = [arguments[0], arguments[arguments.length - 1]];
import("/switchboard.js").then((m) => {
  const log = (window.log = []);
  const sb = (window.sb = new m.Switchboard(url, { minDelay: 100, maxDelay: 800 }));
  sb.on("state", (state, detail) =>
    log.push(["state", state, detail && detail.delay !== undefined ? detail.delay : null]));
  sb.on("message", (data) => log.push(["message", data]));
  sb.on("error", (frame) => log.push(["error", frame.error]));
  const sub = (window.sub = sb.subscribe("room", { history: 10 }));
  sub.on("publication", (data, pos) => log.push(["pub", data, pos.offset]));
  sub.on("subscribed", (info) => log.push(["subscribed", info.recovered ?? null]));
  sub.on("resync", () => log.push(["resync"]));
  const pres = (window.pres = sb.presence("room"));
  pres.on("join", (key, metas, joined, first) => log.push(["join", key, metas.length, first]));
  pres.on("leave", (key, metas, left, last) => log.push(["leave", key, metas.length, last]));
  pres.on("sync", (members) => log.push(["sync", members.map((m) => m.key).sort()]));
  done(true);
}).catch((err) => done(String(err)));
"""


def _events(driver, kind: str) -> list[list]:
    return [e for e in driver.execute_script("return window.log") if e[0] == kind]


def _wait_event(driver, kind: str, predicate=lambda e: True, what: str = "", timeout=20):
    return wait_for(
        driver,
        lambda d: next((e for e in _events(d, kind) if predicate(e)), None),
        what or kind,
        timeout,
    )


@pytest.fixture
def browsers(tmp_path):
    with chromium_browsers(tmp_path) as open_one:
        yield open_one


@pytest.fixture
def servers(tmp_path):
    started: list[SiteServer] = []

    def start(name: str, **env: str) -> SiteServer:
        server = SiteServer(tmp_path, name, **env)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


def _load(driver, server: SiteServer, user: str) -> None:
    driver.get(server.http_url + "/")
    assert driver.execute_async_script(SETUP, f"{server.url}?user={user}") is True


def test_client_is_small_and_its_types_match():
    js = (STATIC / "switchboard.js").read_text()
    dts = (STATIC / "switchboard.d.ts").read_text()
    assert len(gzip.compress(js.encode(), 9)) <= 8 * 1024
    exported = set(re.findall(r"^export class (\w+)", js, re.M))
    declared = set(re.findall(r"^export declare class (\w+)", dts, re.M))
    assert exported == declared == {"Switchboard", "Subscription", "Presence", "Stream"}
    methods = {"connect", "close", "send", "subscribe", "presence", "stream", "unsubscribe"}
    for name in methods:
        assert re.search(rf"^  {name}\(", js, re.M), name
        assert re.search(rf"^  {name}\(", dts, re.M), name


def test_messages_streams_history_and_presence_between_two_windows(browsers, servers):
    server = servers("inmemory")
    alice = browsers("alice")
    _load(alice, server, "alice")
    _wait_event(alice, "state", lambda e: e[1] == "open")
    states = [e[1] for e in _events(alice, "state")]
    assert states == ["connecting", "open"]
    _wait_event(alice, "sync", lambda e: e[1] == ["alice"], "alice's own presence")

    alice.execute_script("window.sb.send({hello: 1})")
    _wait_event(alice, "message", lambda e: e[1] == {"echo": {"hello": 1}}, "the echo")
    # Streams: {"stream", "payload"} frames to and from one stream; others stay messages.
    alice.execute_script(
        "const s = window.sb.stream('chat');"
        "s.on('message', (p) => window.log.push(['stream', p]));"
        "s.send({x: 1}); window.sb.send({stream: 'nobody', payload: 2});"
    )
    _wait_event(alice, "stream", lambda e: e[1] == {"x": 1}, "the stream's echo")
    _wait_event(alice, "message", lambda e: e[1] == {"stream": "nobody", "payload": 2})

    alice.execute_script("window.sb.send({publish: {n: 1}})")
    _wait_event(alice, "pub", lambda e: e[1] == {"n": 1} and e[2] == 1, "the publication")

    bob = browsers("bob")
    _load(bob, server, "bob")
    _wait_event(alice, "join", lambda e: e[1] == "bob" and e[3] is True, "bob's join")
    # History on join: bob's subscription starts with what was said before he came.
    _wait_event(bob, "pub", lambda e: e[1] == {"n": 1}, "history on join")
    _wait_event(bob, "sync", lambda e: e[1] == ["alice", "bob"], "both in bob's list")
    bob.execute_script("window.sb.close()")
    _wait_event(alice, "leave", lambda e: e[1] == "bob" and e[3] is True, "bob's leave")
    assert alice.execute_script("return window.pres.list().map((m) => m.key)") == ["alice"]


async def test_reconnect_with_backoff_queue_and_recovery_after_a_server_restart(
    browsers, servers, redis_server
):
    a = servers("a", RT_REDIS_URL=redis_server.url, RT_PRESENCE_TIMEOUT="1.5")
    b = servers("b", RT_REDIS_URL=redis_server.url, RT_PRESENCE_TIMEOUT="1.5")
    browser = browsers("reader")
    _load(browser, a, "reader")
    _wait_event(browser, "subscribed")
    writer = await Client.open(b, "writer")
    await writer.publish({"n": 1})
    _wait_event(browser, "pub", lambda e: e[1] == {"n": 1})

    a.kill()  # the browser's server dies: its network is cut
    _wait_event(browser, "state", lambda e: e[1] == "disconnected")
    queued = browser.execute_script("return window.sb.send({publish: {n: 'queued'}})")
    assert queued is False
    for n in range(2, 7):  # said while the browser is away
        await writer.publish({"n": n})
    await asyncio.sleep(1.5)  # a few failed attempts, backing off
    a.start()

    _wait_event(browser, "pub", lambda e: e[1] == {"n": "queued"}, "the queued send", 30)
    pubs = [(e[1]["n"], e[2]) for e in _events(browser, "pub")]
    assert pubs == [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 6), ("queued", 7)]
    assert [e[1] for e in _events(browser, "subscribed")] == [None, True]
    assert _events(browser, "resync") == []

    delays = [e[2] for e in _events(browser, "state") if e[1] == "disconnected"]
    assert len(delays) >= 2, delays
    for attempt, delay in enumerate(delays):
        cap = min(800, 100 * 2**attempt)
        assert cap / 2 <= delay <= cap, (attempt, delay)
    # Presence came back with the connection; the entry of the killed process's connection
    # leaves once its heartbeat lapses, the new one stays: one connection each.
    members = "return window.pres.list().map((m) => [m.key, m.metas.length]).sort()"
    wait_for(
        browser,
        lambda d: d.execute_script(members) == [["reader", 1], ["writer", 1]],
        "the presence list after the restart",
    )
    await writer.close()


def test_offline_pauses_reconnecting_and_online_resumes_at_once(browsers, servers):
    server = servers("inmemory")
    driver = browsers("offline")
    _load(driver, server, "offline")
    _wait_event(driver, "state", lambda e: e[1] == "open")
    conditions = {"latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.emulateNetworkConditions", {"offline": True, **conditions})
    _wait_event(driver, "state", lambda e: e[1] == "offline")
    assert driver.execute_script("return window.sb.send({later: 1})") is False
    time.sleep(1)  # longer than the backoff: still no attempt while offline
    assert [e[1] for e in _events(driver, "state")][-1] == "offline"
    driver.execute_cdp_cmd("Network.emulateNetworkConditions", {"offline": False, **conditions})
    _wait_event(driver, "message", lambda e: e[1] == {"echo": {"later": 1}}, "the queued send")
    assert [e[1] for e in _events(driver, "state")][-3:] == ["offline", "connecting", "open"]
