"""One "server process" of the cross-process chat test (run as a script by the test).

argv: redis URL, process name, number of local members, messages expected per member.
Joins every local member to "chat", reports ready on worker channel "chat.ready", waits
for "chat.go.<name>", group_sends one line, then reports what each member received.
"""

import asyncio
import sys

from switchboard.layers.redis import RedisChannelLayer


async def main(url: str, name: str, members: int, expected: int) -> None:
    layer = RedisChannelLayer(hosts=[url])
    channels = [await layer.new_channel() for _ in range(members)]
    for ch in channels:
        await layer.group_add("chat", ch)
    await layer.send("chat.ready", {"type": "ready", "name": name})
    await asyncio.wait_for(layer.receive(f"chat.go.{name}"), 20)
    await layer.group_send("chat", {"type": "chat.message", "text": f"hello from {name}"})
    received = {}
    for ch in channels:
        texts = [(await asyncio.wait_for(layer.receive(ch), 20))["text"] for _ in range(expected)]
        received[ch] = sorted(texts)
    await layer.send("chat.results", {"type": "results", "name": name, "received": received})
    await layer.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
