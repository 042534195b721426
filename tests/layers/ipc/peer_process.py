"""A layer in another OS process, driven through the layer itself (run as a script).

argv: backend ("ipc" or "redis"), its location (runtime directory or Redis URL), control
channel. Reads commands ``{"type": "op", "op": ..., "reply": channel, ...}`` from the control
worker channel, runs each in a task of its own (a waiting receive blocks nothing else) and
answers on ``reply`` with ``{"type": "result", "ok": bool, "value"/"error"/"message": ...}``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any


def make_layer(backend: str, where: str, options: dict[str, Any]) -> Any:
    if backend == "ipc":
        from switchboard.layers.ipc import IPCChannelLayer

        return IPCChannelLayer(path=where, **options)
    from switchboard.layers.redis import RedisChannelLayer

    return RedisChannelLayer(hosts=[where], **options)


async def run(layer: Any, op: str, args: dict[str, Any]) -> Any:
    if op == "pid":
        return os.getpid()
    if op == "new_channel":
        return await layer.new_channel(args.get("prefix", "specific"))
    if op == "send":
        return await layer.send(args["channel"], args["message"])
    if op == "receive":
        return await asyncio.wait_for(layer.receive(args["channel"]), args.get("timeout", 10))
    if op == "group_add":
        return await layer.group_add(args["group"], args["channel"])
    if op == "group_discard":
        return await layer.group_discard(args["group"], args["channel"])
    if op == "group_send":
        return await layer.group_send(args["group"], args["message"])
    if op == "release_channel":
        return await layer.release_channel(args["channel"])
    if op == "flush":
        return await layer.flush()
    raise ValueError(f"unknown op {op!r}")


async def main(backend: str, where: str, control: str) -> None:
    layer = make_layer(backend, where, {"expiry": 2, "group_expiry": 2})
    tasks: set[asyncio.Task] = set()

    async def serve(command: dict[str, Any]) -> None:
        try:
            value = await run(layer, command["op"], command)
            result = {"type": "result", "ok": True, "value": value}
        except Exception as exc:  # noqa: BLE001 - reported to the test
            result = {
                "type": "result",
                "ok": False,
                "error": type(exc).__name__,
                "message": str(exc),
            }
        await layer.send(command["reply"], result)

    await layer.send(f"{control}.ready", {"type": "ready", "pid": os.getpid()})
    while True:
        command = await layer.receive(control)
        if command.get("op") == "exit":
            break
        task = asyncio.get_running_loop().create_task(serve(command))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await layer.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
