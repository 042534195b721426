"""Subscribe/recover steps and the recovery scenario shared by the IPC and Redis process tests
(test_realtime_ipc.py, test_realtime_processes.py): the same behaviour on either layer."""

from __future__ import annotations

from tests.realtime.servers import Client, SiteServer


async def pubs(client: Client, count: int, timeout: float = 20) -> list[dict]:
    return [await client.until(lambda f: f.get("sb") == "pub", timeout) for _ in range(count)]


async def subscribe(client: Client, **position) -> dict:
    """Subscribe to "room"; the subscribed frame."""
    await client.send({"sb": "sub", "topic": "room", **position})
    return await client.until(lambda f: f.get("sb") == "subscribed")


async def away_while_100_are_sent_then_back_on(a: SiteServer, b: SiteServer) -> None:
    """A reader of ``a`` leaves, 100 are published through ``b``, it comes back on ``b``: it
    recovers exactly those 100, in order, in the same epoch, then gets live ones."""
    reader = await Client.open(a, "reader")
    subscribed = await subscribe(reader)
    writer = await Client.open(b, "writer")
    first = await writer.publish({"n": -1})
    (pub,) = await pubs(reader, 1)
    assert pub["offset"] == first == subscribed["offset"] + 1
    epoch, offset = pub["epoch"], pub["offset"]
    await reader.close()

    for n in range(100):
        await writer.publish({"n": n})
    # Back, on the other process: exactly the 100 it missed, in order, then live ones.
    again = await Client.open(b, "reader")
    subscribed = await subscribe(again, epoch=epoch, offset=offset)
    assert subscribed["recovered"] is True and subscribed["offset"] == offset
    missed = await pubs(again, 100)
    assert [p["data"]["n"] for p in missed] == list(range(100))
    assert [p["offset"] for p in missed] == list(range(offset + 1, offset + 101))
    assert {p["epoch"] for p in missed} == {epoch}
    await writer.publish({"n": 100})
    (live,) = await pubs(again, 1)
    assert live["offset"] == offset + 101
    for client in (again, writer):
        await client.close()
