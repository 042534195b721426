"""bench/binding.py's application: a ``ticks`` binding stream and a ``saver`` stream that
saves ticks on request (in the server process, as a view would)."""

import os
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.binding_site.settings")
django.setup()

from bench.binding_site.models import Tick  # noqa: E402
from switchboard.binding import AsyncWebsocketBinding  # noqa: E402
from switchboard.db import database_sync_to_async  # noqa: E402
from switchboard.generic.websocket import (  # noqa: E402
    AsyncJsonWebsocketConsumer,
    AsyncJsonWebsocketDemultiplexer,
)


class TickBinding(AsyncWebsocketBinding):
    model = Tick
    stream = "ticks"
    fields = ["value"]
    coalesce_window = float(os.environ.get("BENCH_COALESCE", "0"))

    async def has_permission(self, user, action, pk):
        return action == "subscribe"


def save_ticks(count: int) -> float:
    ticks = list(Tick.objects.order_by("pk"))
    started = time.perf_counter()
    for n in range(count):
        tick = ticks[n % len(ticks)]
        tick.value = n
        tick.save(update_fields=["value"])
    return time.perf_counter() - started


class Saver(AsyncJsonWebsocketConsumer):
    async def receive_json(self, content, **kwargs):
        seconds = await database_sync_to_async(save_ticks)(content["saves"])
        await self.send_json({"saved": content["saves"], "seconds": seconds})


class Streams(AsyncJsonWebsocketDemultiplexer):
    applications = {"ticks": TickBinding.as_asgi(), "saver": Saver.as_asgi()}


application = Streams.as_asgi()
