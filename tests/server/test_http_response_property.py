"""Property: whatever an application sends, the wire carries at most one framed response per
request (issue 8, items 2 and 3).

Random statuses, header bytes, content-lengths and body messages (HEAD, 204/304/1xx, lengths
too long or short, several body messages, a second http.response.start, a missing final
message) go through the real server; h11 parses the bytes strictly. A pipelined second request
must get its own "ok" response, or the connection must be closed. When the application's
response is valid it arrives as sent; when it is refused before anything was written the
client gets a 500 (RFC 9110 section 15.6.1).
"""

from __future__ import annotations

import asyncio
import itertools
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switchboard.server import Config, Server
from tests.server import http_apps
from tests.server.http_apps import body, start
from tests.server.wire import ask_blocking

TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")  # RFC 9110 section 5.6.2
CTL_BUT_HTAB = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")  # RFC 9110 section 5.5
FRAMING = {b"content-length", b"transfer-encoding", b"connection", b"trailer"}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[tuple[str, int], dict[str, Any]]]:
    """One real server for every example, in its own thread and loop; apps by path."""
    apps: dict[str, Any] = {}
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        srv = Server(Config(app=http_apps.ByPath(apps), port=0, lifespan="off", access_log=False))
        await srv.startup()
        box["addr"] = srv.sockets[0].getsockname()[:2]
        box["loop"], box["stop"] = asyncio.get_running_loop(), asyncio.Event()
        ready.set()
        await box["stop"].wait()
        await srv.shutdown()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    yield box["addr"], apps
    box["loop"].call_soon_threadsafe(box["stop"].set)
    thread.join(10)


@dataclass
class Plan:
    method: bytes
    status: Any
    headers: list[tuple[Any, Any]]
    length: str  # none | exact | more | less | garbage
    parts: list[bytes]
    ending: str  # final | unfinished | extra | restart-first | restart-mid

    def messages(self) -> list[dict[str, Any]]:
        headers = list(self.headers)
        total = sum(map(len, self.parts))
        declared = {"exact": total, "more": total + 1, "less": total - 1}.get(self.length)
        if self.length == "garbage":
            headers.append((b"content-length", b"12x"))
        elif declared is not None and declared >= 0:
            headers.append((b"content-length", b"%d" % declared))
        out = [start(self.status, headers)]
        if self.ending == "restart-first":
            out.append(start(200))
        for n, part in enumerate(self.parts):
            last = n == len(self.parts) - 1
            if self.ending == "restart-mid" and last:
                out.append(start(200))
            more = not last or self.ending == "unfinished"
            out.append(body(part, more=more))
        if self.ending == "extra":
            out.append(body(b"after the end"))
        return out

    def expect(self) -> str:
        """ "ok" (sent as given, connection reusable), "500", or "cut" (refused after bytes
        went out: the connection must close)."""
        if not (type(self.status) is int and 200 <= self.status <= 599):
            return "500"
        if self.length == "garbage":
            return "500"
        for name, value in self.headers:
            if not TOKEN.match(name) or CTL_BUT_HTAB.search(value):
                return "500"
        if self.ending == "restart-first":
            return "500"
        no_content = self.method == b"HEAD" or self.status in (204, 304)
        total = sum(map(len, self.parts))
        declared = {"exact": total, "more": total + 1, "less": total - 1}.get(self.length)
        owed = None if no_content or declared is None or declared < 0 else declared
        for n, part in enumerate(self.parts):
            last = n == len(self.parts) - 1
            wrote = n > 0  # the head goes out with the first body message
            if self.ending == "restart-mid" and last:
                return "cut" if wrote else "500"
            more = not last or self.ending == "unfinished"
            if owed is not None:
                if len(part) > owed or (not more and len(part) < owed):
                    return "cut" if wrote else "500"
                owed -= len(part)
        if self.ending == "unfinished":
            return "cut"
        return "ok"


names = st.one_of(
    st.from_regex(rb"[a-zA-Z][a-zA-Z0-9!#$%&'*+.^_`|~-]{0,8}", fullmatch=True),
    st.binary(max_size=6),
).filter(lambda name: name.lower() not in FRAMING)
values = st.one_of(
    st.from_regex(rb"[\t -~\x80-\xff]{0,10}", fullmatch=True),
    st.binary(max_size=8),
)
plans = st.builds(
    Plan,
    method=st.sampled_from([b"GET", b"GET", b"HEAD"]),
    status=st.one_of(
        st.sampled_from([200, 201, 204, 206, 304, 404, 500, 599]),
        st.sampled_from([100, 101, 103, 199, 99, 600, 0, -200, "200", 200.0, None]),
    ),
    headers=st.lists(st.tuples(names, values), max_size=4),
    length=st.sampled_from(["none", "none", "exact", "more", "less", "garbage"]),
    parts=st.lists(st.binary(max_size=12), min_size=1, max_size=3),
    ending=st.sampled_from(
        ["final", "final", "final", "unfinished", "extra", "restart-first", "restart-mid"]
    ),
)
counter = itertools.count()


@settings(max_examples=250, deadline=None, database=None)
@given(plan=plans)
def test_one_framed_response_per_request_whatever_the_app_sends(server, plan: Plan) -> None:
    addr, apps = server
    path = f"/p{next(counter)}"
    apps[path] = http_apps.Replay(*plan.messages())
    request = plan.method + b" " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    try:
        parsed = ask_blocking(
            addr, request + b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n", [plan.method, b"GET"]
        )
    finally:
        del apps[path]
    # Whatever happened: nothing but responses on the wire, and a second response only if it
    # is exactly the answer to the second request.
    assert not parsed.extra, parsed.extra
    assert len(parsed.answers) >= 1 or parsed.closed
    if len(parsed.answers) == 2:
        second = parsed.answers[1]
        assert (second.status, second.body, second.complete) == (200, b"ok", True)
    else:
        assert parsed.closed, parsed.answers
    expected = plan.expect()
    first = parsed.answers[0] if parsed.answers else None
    if expected == "500":
        assert first is not None and (first.status, first.complete) == (500, True)
        assert parsed.closed
    elif expected == "cut":
        assert parsed.closed and len(parsed.answers) <= 1
        assert first is not None and first.status == plan.status
    else:
        assert first is not None and first.complete and len(parsed.answers) == 2
        assert first.status == plan.status
        no_content = plan.method == b"HEAD" or plan.status in (204, 304)
        assert first.body == (b"" if no_content else b"".join(plan.parts))
        for name, value in plan.headers:
            assert value.strip(b" \t") in first.header(name.lower()), (name, first.headers)
