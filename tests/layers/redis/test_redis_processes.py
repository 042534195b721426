"""Real OS processes sharing a group through Redis: every member receives every message."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from switchboard.layers.redis import RedisChannelLayer

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = Path(__file__).with_name("chat_process.py")


async def test_two_processes_chat(redis_server):
    names, members = ["p1", "p2"], 3
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(SCRIPT),
            redis_server.url,
            name,
            str(members),
            "3",
            env=env,
            stderr=subprocess.PIPE,
        )
        for name in names
    ]
    layer = RedisChannelLayer(hosts=[redis_server.url])
    try:
        ready = {(await asyncio.wait_for(layer.receive("chat.ready"), 30))["name"] for _ in names}
        assert ready == set(names)
        # Both processes speak, and so does this (third) process, which has no members.
        await layer.group_send("chat", {"type": "chat.message", "text": "hello from test"})
        for name in names:
            await layer.send(f"chat.go.{name}", {"type": "go"})
        results = [await asyncio.wait_for(layer.receive("chat.results"), 30) for _ in names]
        expected = sorted(["hello from p1", "hello from p2", "hello from test"])
        assert {r["name"] for r in results} == set(names)
        for result in results:
            assert len(result["received"]) == members
            for texts in result["received"].values():
                assert texts == expected
    finally:
        await layer.close()
        errors = []
        for proc in procs:
            try:
                _, err = await asyncio.wait_for(proc.communicate(), 10)
            except TimeoutError:
                proc.kill()
                _, err = await proc.communicate()
            errors.append(err.decode())
    for proc, err in zip(procs, errors, strict=True):
        assert proc.returncode == 0, err
