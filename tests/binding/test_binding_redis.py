"""Data binding across processes: saves in another process reach sockets here via Redis."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.test import override_settings
from websockets.asyncio.client import connect

from switchboard.layers import channel_layers, get_channel_layer
from tests.binding.test_binding import Client, application
from tests.layers.conftest import _shared_redis_servers, redis_server  # noqa: F401
from tests.support.serving import serving

ROOT = Path(__file__).resolve().parents[2]


async def test_saves_in_another_process_are_pushed_to_subscribers_here(redis_server, users):  # noqa: F811
    layers = {
        "default": {
            "BACKEND": "switchboard.layers.redis.RedisChannelLayer",
            "CONFIG": {"hosts": [redis_server.url]},
        }
    }
    with override_settings(CHANNEL_LAYERS=layers):
        channel_layers.reset()
        try:
            async with serving(application) as netloc, connect(f"ws://{netloc}/?user=carol") as ws:
                watcher = Client(ws)
                assert (await watcher.request("notes", {"action": "subscribe"}))["ok"]
                db = settings.DATABASES["default"]["NAME"]
                command = [sys.executable, "-m", "tests.binding.save_process", db, redis_server.url]
                saver = await asyncio.create_subprocess_exec(
                    *command, "from-afar", "second", cwd=ROOT, stderr=subprocess.PIPE
                )
                _, stderr = await asyncio.wait_for(saver.communicate(), 60)
                assert saver.returncode == 0, stderr.decode()
                got = [await watcher.next("notes", timeout=10) for _ in range(3)]
                assert [(g["action"], g["data"]["title"]) for g in got] == [
                    ("create", "from-afar"),
                    ("create", "second"),
                    ("update", "second"),
                ]
                assert got[2]["data"]["value"] == 7
        finally:
            await get_channel_layer().close()
            channel_layers.reset()
