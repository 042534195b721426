"""Presence and recovery with real server processes, real sockets and a real redis-server.

Each test starts ``switchboard serve tests.realtime.site:application`` processes on the Redis
layer (tests/realtime/servers.py) and talks to them over WebSockets.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import pytest

from switchboard.layers.redis import RedisChannelLayer
from tests.realtime.recovery import away_while_100_are_sent_then_back_on, subscribe
from tests.realtime.recovery import pubs as _pubs
from tests.realtime.servers import Client, SiteServer
from tests.support.redis_servers import RedisServer

PRESENCE_TIMEOUT = 1.5  # seconds: a dead process's entries must be gone within about this


@pytest.fixture
def start_server(tmp_path) -> Iterator[Callable[..., SiteServer]]:
    servers: list[SiteServer] = []

    def start(redis: RedisServer, name: str, **env: str) -> SiteServer:
        env.setdefault("RT_PRESENCE_TIMEOUT", str(PRESENCE_TIMEOUT))
        server = SiteServer(tmp_path, name, RT_REDIS_URL=redis.url, **env)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


def _users(frame: dict) -> set[str]:
    return set(frame["state"])


async def _listed(redis: RedisServer) -> dict[str, int]:
    """``{user: connections}`` as any process sees it (a layer of the test's own)."""
    layer = RedisChannelLayer(hosts=[redis.url])
    try:
        counts: dict[str, int] = {}
        for entry in await layer.presence_store().list("room"):
            counts[entry.key] = counts.get(entry.key, 0) + 1
        return counts
    finally:
        await layer.close()


async def _wait_listed(redis: RedisServer, expected: dict[str, int], timeout: float) -> float:
    started = time.monotonic()
    while True:
        listed = await _listed(redis)
        if listed == expected:
            return time.monotonic() - started
        assert time.monotonic() - started < timeout, f"listed {listed}, expected {expected}"
        await asyncio.sleep(0.05)


async def test_presence_across_two_processes_and_a_sigkilled_one_disappears(
    redis_server, start_server
):
    a, b = start_server(redis_server, "a"), start_server(redis_server, "b")
    alice = await Client.open(a, "alice")
    await alice.send({"sb": "presence", "topic": "room"})
    state = await alice.until(lambda f: f.get("sb") == "presence_state")
    assert _users(state) == {"alice"}

    bob = await Client.open(b, "bob")
    diff = await alice.until(lambda f: f.get("sb") == "presence_diff")
    assert set(diff["joins"]) == {"bob"}
    assert diff["joins"]["bob"]["metas"][0]["pid"] == b.process.pid
    # Alice again, from the other process: one user, two connections, nobody counted twice.
    await Client.open(b, "alice")  # dies with process b below
    await alice.until(lambda f: f.get("sb") == "presence_diff" and "alice" in f["joins"])
    assert await _listed(redis_server) == {"alice": 2, "bob": 1}
    await bob.send({"sb": "presence", "topic": "room"})
    state = await bob.until(lambda f: f.get("sb") == "presence_state")
    assert {k: len(v["metas"]) for k, v in state["state"].items()} == {"alice": 2, "bob": 1}

    b.kill()  # no untrack, no goodbye: only the lapsed heartbeat tells
    killed = time.monotonic()
    leave = await alice.until(lambda f: f.get("sb") == "presence_diff" and f["leaves"], 15)
    noticed = time.monotonic() - killed
    gone = {k: len(v["metas"]) for k, v in leave["leaves"].items()}
    if gone != {"alice": 1, "bob": 1}:  # the two leaves may come as two diffs
        more = await alice.until(lambda f: f.get("sb") == "presence_diff" and f["leaves"], 15)
        for key, value in more["leaves"].items():
            gone[key] = gone.get(key, 0) + len(value["metas"])
    assert gone == {"alice": 1, "bob": 1}
    # Bounded: the heartbeat TTL plus one sweep interval, with room for a slow machine.
    assert noticed < PRESENCE_TIMEOUT * 2 + 3, noticed
    assert await _listed(redis_server) == {"alice": 1}
    await alice.close()
    await _wait_listed(redis_server, {}, 10)


async def test_redis_restart_without_persistence_rebuilds_presence(
    fresh_redis_server, start_server
):
    a, b = start_server(fresh_redis_server, "a"), start_server(fresh_redis_server, "b")
    clients = [await Client.open(a, "alice"), await Client.open(b, "bob")]
    await _wait_listed(fresh_redis_server, {"alice": 1, "bob": 1}, 10)
    fresh_redis_server.restart()  # comes back empty
    assert await _listed(fresh_redis_server) == {}
    took = await _wait_listed(fresh_redis_server, {"alice": 1, "bob": 1}, 15)
    assert took < PRESENCE_TIMEOUT * 2 + 3, took
    for client in clients:
        await client.close()
    await _wait_listed(fresh_redis_server, {}, 10)


async def _subscribe(client: Client, **position) -> tuple[dict, list[dict]]:
    """Subscribe to "room"; the subscribed frame and the pubs replayed right after it."""
    return await subscribe(client, **position), []


async def test_client_away_while_100_are_sent_recovers_all_in_order_on_another_process(
    redis_server, start_server
):
    a, b = start_server(redis_server, "a"), start_server(redis_server, "b")
    await away_while_100_are_sent_then_back_on(a, b)


async def test_history_trimmed_gives_an_explicit_resync(redis_server, start_server):
    a = start_server(redis_server, "a", RT_HISTORY_SIZE="10")
    reader = await Client.open(a, "reader")
    await _subscribe(reader)
    writer = await Client.open(a, "writer")
    await writer.publish({"n": 0})
    (pub,) = await _pubs(reader, 1)
    await reader.close()
    for n in range(1, 31):
        await writer.publish({"n": n})
    again = await Client.open(a, "reader")
    subscribed, _ = await _subscribe(again, epoch=pub["epoch"], offset=pub["offset"], history=5)
    assert subscribed["recovered"] is False  # 30 missed, 10 kept: never a silent gap
    pubs = await _pubs(again, 5)
    assert [p["data"]["n"] for p in pubs] == [26, 27, 28, 29, 30]
    assert subscribed["offset"] == pubs[0]["offset"] - 1
    for client in (again, writer):
        await client.close()


async def test_redis_crash_with_aof_loses_nothing(tmp_path, start_server):
    with RedisServer(aof=True, name="aof") as redis:
        a, b = start_server(redis, "a"), start_server(redis, "b")
        away = await Client.open(a, "away")
        await _subscribe(away)
        stays = await Client.open(a, "stays")  # connected through the crash
        subscribed, _ = await _subscribe(stays)
        writer = await Client.open(b, "writer")
        await writer.publish({"n": 0})
        (pub,) = await _pubs(away, 1)
        epoch, offset = pub["epoch"], pub["offset"]
        await away.close()
        for n in range(1, 21):
            await writer.publish({"n": n})

        redis.kill()  # a crash, not a clean shutdown
        redis.start()
        # The server processes reconnect on their own; publish again once they have.
        n = 21
        deadline = time.monotonic() + 30
        while n <= 40:
            try:
                await writer.publish({"n": n})
                n += 1
            except Exception:  # the writer's connection died with a failed publish
                assert time.monotonic() < deadline, b.log()[-3000:]
                await asyncio.sleep(0.2)
                writer = await Client.open(b, "writer")

        again = await Client.open(b, "away")
        subscribed, _ = await _subscribe(again, epoch=epoch, offset=offset)
        assert subscribed["recovered"] is True, subscribed
        pubs = await _pubs(again, 40)
        assert [p["data"]["n"] for p in pubs] == list(range(1, 41))
        assert {p["epoch"] for p in pubs} == {epoch}

        # The client that stayed connected sees every publication once, in order, across the
        # crash. Its process may have been resubscribing while some were published (pub/sub
        # loses those): the next publication it does get reveals the gap, and the history
        # fills it in. So publish markers until one arrives.
        seen: list[int] = []
        marker = 41
        while not seen or seen[-1] < 41:
            try:
                frame = await stays.until(lambda f: f.get("sb") in ("pub", "resync"), 3)
            except TimeoutError:
                await writer.publish({"n": marker})
                marker += 1
                continue
            assert frame["sb"] == "pub", frame
            seen.append(frame["data"]["n"])
        assert seen == list(range(0, seen[-1] + 1))
        for client in (again, stays, writer):
            await client.close()


async def test_redis_restart_without_persistence_is_an_explicit_resync(
    fresh_redis_server, start_server
):
    a = start_server(fresh_redis_server, "a")
    writer = await Client.open(a, "writer")
    reader = await Client.open(a, "reader")
    await _subscribe(reader)
    await writer.publish({"n": 0})
    (pub,) = await _pubs(reader, 1)
    await reader.close()
    fresh_redis_server.restart()  # history gone: the next publication starts a new epoch
    deadline = time.monotonic() + 30
    while True:
        try:
            await writer.publish({"n": 1})
            break
        except Exception:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)
            writer = await Client.open(a, "writer")
    again = await Client.open(a, "reader")
    subscribed, _ = await _subscribe(again, epoch=pub["epoch"], offset=pub["offset"], history=10)
    assert subscribed["recovered"] is False and subscribed["epoch"] != pub["epoch"]
    (replayed,) = await _pubs(again, 1)
    assert replayed["data"] == {"n": 1} and replayed["offset"] == 1
    for client in (again, writer):
        await client.close()


async def test_redis_restart_without_persistence_loses_nothing_of_the_new_epoch(
    fresh_redis_server, start_server
):
    """A client connected through a Redis restart without persistence, on one process, while
    another process publishes steadily. The old epoch's history is gone (one explicit resync);
    every publication acknowledged after the restart reaches the client once, in order: those
    published while its process was still re-subscribing (pub/sub reached nobody) come from
    the new epoch's history when the next one arrives. Channels has no recovery to compare."""
    a, b = start_server(fresh_redis_server, "a"), start_server(fresh_redis_server, "b")
    stays = await Client.open(a, "stays")
    await _subscribe(stays)
    writer = await Client.open(b, "writer")
    await writer.publish({"n": 0})
    (first,) = await _pubs(stays, 1)

    fresh_redis_server.kill()  # a crash: the history goes with it
    await asyncio.to_thread(fresh_redis_server.start)
    acknowledged: list[int] = []
    n = 1
    deadline = time.monotonic() + 30
    while len(acknowledged) < 30:
        try:
            await writer.publish({"n": n})  # returns once the publication is stored
            acknowledged.append(n)
        except Exception:  # refused while Redis was away: not acknowledged
            assert time.monotonic() < deadline, b.log()[-3000:]
            await asyncio.sleep(0.1)
            writer = await Client.open(b, "writer")
        n += 1

    # Publications made while the reader's process was still re-subscribing reach it when the
    # next one does (it reveals the gap; the history fills it): if the last ones fell in that
    # window, publish markers until one arrives, as a live topic would.
    frames: list[dict] = []
    while not frames or frames[-1].get("data", {}).get("n") != acknowledged[-1]:
        try:
            frames.append(await stays.until(lambda f: f.get("sb") in ("pub", "resync"), 3))
        except TimeoutError:
            await writer.publish({"n": n})
            acknowledged.append(n)
            n += 1
    resyncs = [f for f in frames if f["sb"] == "resync"]
    assert len(resyncs) == 1 and resyncs[0]["epoch"] != first["epoch"], frames[:3]
    seen = [f["data"]["n"] for f in frames if f["sb"] == "pub"]
    assert seen == acknowledged, f"missed {sorted(set(acknowledged) - set(seen))}"
    for client in (stays, writer):
        await client.close()
