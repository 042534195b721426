"""Sessions reached through other server processes: two ``switchboard serve`` processes of
tests/realtime/site.py sharing one IPC channel layer; requests for a session opened on one are
forwarded to it by the other (``sbt.send`` / ``sbt.poll`` through the layer)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.realtime.servers import SiteServer
from tests.transports.clients import Poller, post, sse

APP = "tests.transports.process_site:application"


class Server(SiteServer):
    """A SiteServer serving tests/transports/process_site.py, with ``--workers``."""

    application = APP
    workers = 1

    def serve_options(self) -> list[str]:
        return ["--workers", str(self.workers)]


@pytest.fixture
def pair(tmp_path) -> Iterator[tuple[Server, Server]]:
    runtime = str(tmp_path / "rt")
    servers = [Server(tmp_path, name, RT_IPC_PATH=runtime) for name in ("a", "b")]
    try:
        for server in servers:
            server.start()
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.stop()


async def test_poll_session_opened_on_one_process_used_through_another(pair):
    a, b = pair
    async with httpx.AsyncClient(timeout=20) as client:
        on_a = Poller(client, f"{a.http_url}/ws/?user=ann")
        await on_a.open()
        via_b = Poller(client, f"{b.http_url}/ws/?user=ann")
        via_b.token = on_a.token
        assert (await via_b.send(json.dumps({"hello": "b"}))).status_code == 204
        [echo] = await via_b.frames(1)
        assert json.loads(echo) == {"echo": {"hello": "b"}}
        # Either process answers with the same numbering: A now, for what B acknowledged.
        await via_b.send(json.dumps({"again": 1}))
        answer = (await on_a.poll(ack=via_b.ack)).json()
        assert answer["seq"] == 2 and [json.loads(f) for f in answer["frames"]] == [
            {"echo": {"again": 1}}
        ]
        # A forged token is refused without a trip through the layer; an ended session 410.
        forged = await client.get(
            f"{b.http_url}/ws/?sb_transport=poll&sb_session={on_a.token}x&sb_ack=0"
        )
        assert forged.status_code == 410
        assert (await via_b.send(close=True)).status_code == 204
        assert (await via_b.poll()).status_code == 410
        assert (await on_a.poll()).status_code == 410


async def test_sse_stream_on_one_process_posts_through_another(pair):
    a, b = pair
    async with httpx.AsyncClient(timeout=20) as client:
        async with sse(client, f"{a.http_url}/ws/?user=bob") as stream:
            url = f"{b.http_url}/ws/?user=bob"
            frame = json.dumps({"publish": {"n": 1}})
            assert (await post(client, url, "sse", stream.token, frame)).status_code == 204
            got = [json.loads(await stream.text(timeout=10)) for _ in range(1)]
            assert got == [{"published": 1}]


async def test_serve_with_two_workers(tmp_path):
    server = Server(tmp_path, "w", RT_IPC_PATH=str(tmp_path / "rt"))
    server.workers = 2
    server.start()
    try:
        # A new connection per request: the kernel spreads them over both workers, so most
        # requests reach the session through the other worker's forwarding.
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=20, limits=limits) as client:
            poller = Poller(client, f"{server.http_url}/ws/?user=w")
            await poller.open()
            for n in range(12):
                assert (await poller.send(json.dumps({"n": n}))).status_code == 204
                [echo] = await poller.frames(1)
                assert json.loads(echo) == {"echo": {"n": n}}
            await poller.send(close=True)
    finally:
        server.stop()
