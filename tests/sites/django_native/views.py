"""Views reporting where they ran, what the signals saw, and which DB connections exist."""

import asyncio
import threading
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.signals import request_finished, request_started
from django.db import connections
from django.db.backends.signals import connection_created
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse

from switchboard.generic.websocket import AsyncWebsocketConsumer

_lock = threading.Lock()
SIGNALS = {"started": 0, "finished": 0}
DB = {"created": 0}
WRAPPERS: set = set()  # every thread's DatabaseWrapper a query view used


def connect_signals() -> None:
    def count(name: str):
        def receiver(**kwargs) -> None:
            with _lock:
                SIGNALS[name] += 1

        return receiver

    # Strong references: the receivers live as long as the process.
    connect_signals.receivers = (count("started"), count("finished"))
    request_started.connect(connect_signals.receivers[0], weak=False)
    request_finished.connect(connect_signals.receivers[1], weak=False)

    def created(**kwargs) -> None:
        with _lock:
            DB["created"] += 1

    connection_created.connect(created, weak=False)


def whoami(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {
            "request_class": type(request).__name__,
            "thread": threading.current_thread().name,
            "script_name": request.META.get("SCRIPT_NAME"),
            "path": request.path,
            "path_info": request.path_info,
            "absolute_uri": request.build_absolute_uri(),
            "remote_addr": request.META.get("REMOTE_ADDR"),
            "query": request.GET.getlist("q"),
            "x_multi": request.headers.get("X-Multi"),
            "cookies": request.COOKIES,
        }
    )


async def async_thread(request: HttpRequest) -> JsonResponse:
    count = await get_user_model().objects.acount()
    return JsonResponse({"thread": threading.current_thread().name, "users": count})


def reset_signals(request: HttpRequest) -> JsonResponse:
    with _lock:
        SIGNALS.update(started=0, finished=0)
    return JsonResponse({})


def signal_counts(request: HttpRequest) -> JsonResponse:
    with _lock:
        return JsonResponse(dict(SIGNALS))


def query(request: HttpRequest) -> JsonResponse:
    users = get_user_model().objects.count()
    with _lock:
        WRAPPERS.add(connections["default"])
    return JsonResponse({"users": users, "thread": threading.current_thread().name})


def db_state(request: HttpRequest) -> JsonResponse:
    with _lock:
        return JsonResponse(
            {
                "open": sum(1 for w in WRAPPERS if w.connection is not None),
                "wrappers": len(WRAPPERS),
                "created": DB["created"],
            }
        )


def _marker(request: HttpRequest, kind: str):
    return settings.SITE_DIR / f"closed-{kind}-{request.GET['id']}"


def endless_sync(request: HttpRequest) -> StreamingHttpResponse:
    marker = _marker(request, "sync")

    def chunks():
        try:
            while True:
                yield b"s" * 1024
                time.sleep(0.005)
        finally:
            marker.write_text(threading.current_thread().name)

    return StreamingHttpResponse(chunks())


def endless_async(request: HttpRequest) -> StreamingHttpResponse:
    marker = _marker(request, "async")

    async def chunks():
        try:
            while True:
                yield b"a" * 1024
                await asyncio.sleep(0.005)
        finally:
            marker.write_text(threading.current_thread().name)

    return StreamingHttpResponse(chunks())


class EchoConsumer(AsyncWebsocketConsumer):
    async def receive(self, text_data=None, bytes_data=None):
        await self.send(text_data=text_data, bytes_data=bytes_data)


OVERLAP = {"now": 0, "max": 0}


def overlap(request: HttpRequest) -> JsonResponse:
    """Counts how many requests run this view at once; ``?sleep=S`` waits S seconds, else it
    computes for ``?spin=S`` seconds of CPU time (0.3 ms by default)."""
    with _lock:
        OVERLAP["now"] += 1
        OVERLAP["max"] = max(OVERLAP["max"], OVERLAP["now"])
    try:
        if "sleep" in request.GET:
            time.sleep(float(request.GET["sleep"]))
        else:
            # CPU time: being preempted does not count
            end = time.thread_time() + float(request.GET.get("spin", 0.0003))
            while time.thread_time() < end:
                pass
    finally:
        with _lock:
            OVERLAP["now"] -= 1
    return JsonResponse({"thread": threading.current_thread().name})


def overlap_max(request: HttpRequest) -> JsonResponse:
    with _lock:
        seen, OVERLAP["max"] = OVERLAP["max"], 0
    return JsonResponse({"max": seen})


def stuck(request: HttpRequest) -> JsonResponse:
    """Never answers: the server must still stop, and its process exit."""
    (settings.SITE_DIR / "stuck-started").write_text(threading.current_thread().name)
    while True:
        time.sleep(1)
