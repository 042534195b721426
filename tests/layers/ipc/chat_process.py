"""One chat process of the IPC process tests (run as a script by the test).

argv: runtime directory, process name, local members, messages to send, seconds between sends.
Joins every local member to group "chat", says ready on worker channel "chat.ready", waits for
"chat.go.<name>", group_sends ``{"sender": name, "seq": n}`` messages while its members record
what reaches them, and once told "chat.stop.<name>" reports on "chat.results".
"""

from __future__ import annotations

import asyncio
import os
import sys

from switchboard.layers.ipc import IPCChannelLayer


async def main(path: str, name: str, members: int, messages: int, interval: float) -> None:
    layer = IPCChannelLayer(path=path, capacity=10_000, group_expiry=3600)
    channels = [await layer.new_channel() for _ in range(members)]
    for channel in channels:
        await layer.group_add("chat", channel)
    received: dict[str, list[list]] = {channel: [] for channel in channels}

    async def member(channel: str) -> None:
        while True:
            message = await layer.receive(channel)
            received[channel].append([message["sender"], message["seq"]])

    readers = [asyncio.ensure_future(member(channel)) for channel in channels]
    await layer.send("chat.ready", {"type": "ready", "name": name, "pid": os.getpid()})
    await asyncio.wait_for(layer.receive(f"chat.go.{name}"), 60)
    for seq in range(messages):
        await layer.group_send("chat", {"type": "chat.message", "sender": name, "seq": seq})
        await asyncio.sleep(interval)
    await layer.send("chat.sent", {"type": "sent", "name": name})
    await asyncio.wait_for(layer.receive(f"chat.stop.{name}"), 60)
    await asyncio.sleep(0.3)  # anything still in flight lands
    for reader in readers:
        reader.cancel()
    result = {"type": "results", "name": name, "received": received, "drops": layer.drops.totals}
    await layer.send("chat.results", result)
    await layer.close()


if __name__ == "__main__":
    path, name, members, messages, interval = sys.argv[1:6]
    asyncio.run(main(path, name, int(members), int(messages), float(interval)))
