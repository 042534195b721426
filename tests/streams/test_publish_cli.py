"""``switchboard publish`` (switchboard.streams.cli), run as a real subprocess: over HTTP to a
real server in the test's loop (``--url``), and through the project's channel layer (an IPC
layer shared with that server's process); a real WebSocket subscriber sees what it published.
Exit statuses: 0 published, 1 refused, 2 bad command line, 3 worth retrying."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from django.core.asgi import get_asgi_application
from django.test import override_settings
from django.urls import path
from websockets.asyncio.client import ClientConnection, connect

from switchboard.layers import channel_layers
from switchboard.layers.inmemory import InMemoryChannelLayer
from switchboard.routing import ProtocolTypeRouter, URLRouter
from switchboard.streams import SignedStreamConsumer, signed_stream_name
from switchboard.streams.ratelimit import use_clock
from tests.support.gateway_processes import ipc_layers
from tests.support.serving import serving

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parents[2]
KEY = "cli-test-key-" + "0" * 32
PUBLISH = {"KEYS": [KEY], "BURST": 1000}


class Subscriber(SignedStreamConsumer):
    async def topic_allowed(self, topic: str, action: str) -> bool:
        return topic == "room"


APPLICATION = ProtocolTypeRouter(
    {"http": get_asgi_application(), "websocket": URLRouter([path("ws/", Subscriber.as_asgi())])}
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _site() -> Iterator[None]:
    use_clock(Clock())  # nothing moves it: no bucket refills during a test
    with override_settings(ROOT_URLCONF="switchboard.streams.urls", SWITCHBOARD_PUBLISH=PUBLISH):
        yield
    use_clock(time.monotonic)


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    for name in ("DJANGO_SETTINGS_MODULE", "SWITCHBOARD_PUBLISH_URL", "SWITCHBOARD_PUBLISH_KEY"):
        env.pop(name, None)
    env.update(extra)
    return env


async def publish(*args: str, stdin: bytes = b"", **env: str) -> tuple[int, str, str]:
    """``switchboard publish ARGS`` in a subprocess: (exit status, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switchboard", "publish", *args,
        cwd=ROOT, env=_env(**env), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(stdin), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@asynccontextmanager
async def subscribed(topic: str) -> AsyncIterator[tuple[str, ClientConnection, dict[str, Any]]]:
    """The server on this loop, and a socket subscribed to ``topic`` on it."""
    async with serving(APPLICATION) as address, connect(f"ws://{address}/ws/") as ws:
        await ws.send(json.dumps({"sb": "sub", "topic": topic}))
        reply = await frame(ws)
        assert reply["sb"] == "subscribed", reply
        yield address, ws, reply


async def frame(ws: ClientConnection) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), 10))


# -- over HTTP (--url) ---------------------------------------------------------------------


async def test_over_http_a_subscriber_receives_what_the_command_published():
    channel_layers.set("default", InMemoryChannelLayer())
    token = signed_stream_name("news")
    async with subscribed(token) as (address, ws, start):
        url = f"http://{address}/publish"
        status, out, err = await publish(
            "news", '{"n": 1}', "--event", "update", "--url", url, SWITCHBOARD_PUBLISH_KEY=KEY
        )
        assert (status, err) == (0, "")
        answer = {"stream": "news", "epoch": start["epoch"], "offset": start["offset"] + 1}
        assert json.loads(out) == answer
        pub = await frame(ws)
        assert (pub["offset"], pub["data"], pub["event"]) == (answer["offset"], {"n": 1}, "update")

        # DATA from stdin, the URL from the environment, the key on the command line.
        status, out, err = await publish(
            "news", "-", "--key", KEY, stdin=b'"<li>from stdin</li>"', SWITCHBOARD_PUBLISH_URL=url
        )
        assert (status, err) == (0, "")
        pub = await frame(ws)
        assert (pub["offset"], pub["data"]) == (json.loads(out)["offset"], "<li>from stdin</li>")
        assert "event" not in pub


async def test_over_http_a_raw_topic():
    channel_layers.set("default", InMemoryChannelLayer())
    async with subscribed("room") as (address, ws, start):
        status, out, err = await publish(
            "room", '{"text": "hi"}', "--topic", "--url", f"http://{address}/publish",
            SWITCHBOARD_PUBLISH_KEY=KEY,
        )  # fmt: skip
        assert (status, err) == (0, "")
        assert json.loads(out) == {"topic": "room", "epoch": start["epoch"], "offset": 1}
        assert (await frame(ws))["data"] == {"text": "hi"}


async def test_over_http_refusals_and_failures_exit_1_or_3(unused_tcp_port):
    channel_layers.set("default", InMemoryChannelLayer())
    # Two tokens: every authenticated request takes one, the refused one below too.
    with override_settings(SWITCHBOARD_PUBLISH={"KEYS": [KEY], "RATE": 1, "BURST": 2}):
        async with serving(APPLICATION) as address:
            url = f"http://{address}/publish"
            wrong = "wrong-key-" + "1" * 32
            nowhere = f"http://127.0.0.1:{unused_tcp_port}/publish"
            # Independent, so side by side: each run is mostly an interpreter starting.
            wrong_key, bad_event, no_server = await asyncio.gather(
                publish("news", "1", "--url", url, "--key", wrong),
                publish("news", "1", "--event", "sb.x", "--url", url, "--key", KEY),
                publish("news", "1", "--url", nowhere, "--key", KEY),
            )
            status, out, err = wrong_key
            assert (status, out) == (1, "")
            assert "error: 401 unauthorized: the key is not valid" in err
            assert wrong not in err
            status, out, err = bad_event
            assert (status, out) == (1, "")
            assert "400 invalid_field: event: " in err
            status, out, err = no_server
            assert (status, out) == (3, "")
            assert f"cannot reach {nowhere}" in err

            status, _, _ = await publish("news", "1", "--url", url, "--key", KEY)
            assert status == 0  # the burst's last token
            status, out, err = await publish("news", "2", "--url", url, "--key", KEY)
            assert (status, out) == (3, "")
            assert "429 rate_limited" in err and "(Retry-After: 1 s)" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["news", "{", "--url", "http://127.0.0.1:9/p", "--key", KEY], "DATA is not JSON"),
        (["news", "NaN", "--url", "http://127.0.0.1:9/p"], "DATA is not JSON"),
        (["news", "-", "--url", "http://127.0.0.1:9/p"], "stdin is not JSON"),
        (["news", "1", "--url", "http://127.0.0.1:9/p"], "no key: set SWITCHBOARD_PUBLISH_KEY"),
        (["news", "1", "--url", "ftp://example.com/", "--key", KEY], "--url must be an http"),
        (["room", "{}", "--topic", "--event", "e"], "--event applies to streams"),
        (["news", "1"], "nowhere to publish: pass --url"),
    ],
)
def test_a_bad_command_line_exits_2(args, message, monkeypatch, capsys):
    # In this process (the exit status is main's return value): a subprocess each would
    # only add interpreter start-ups. The subprocess test below covers the entry point.
    from switchboard.cli import main

    for name in ("DJANGO_SETTINGS_MODULE", "SWITCHBOARD_PUBLISH_URL", "SWITCHBOARD_PUBLISH_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("sys.stdin", _Stdin(b"not json"))
    assert main(["publish", *args]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("switchboard publish: error: ") and message in err, err


class _Stdin:
    def __init__(self, data: bytes) -> None:
        import io

        self.buffer = io.BytesIO(data)


async def test_the_command_exits_2_with_usage_for_missing_arguments():
    status, out, err = await publish("news")
    assert (status, out) == (2, "")
    assert "usage: switchboard publish" in err
    assert "the following arguments are required: DATA" in err

    status, _, err = await publish("news", "1")
    assert status == 2
    assert "nowhere to publish: pass --url (or set SWITCHBOARD_PUBLISH_URL)" in err


# -- through the channel layer (DJANGO_SETTINGS_MODULE) --------------------------------------


def _settings_module(directory: Path, layers: dict[str, Any]) -> str:
    (directory / "publish_cli_settings.py").write_text(
        f"SECRET_KEY = 'not-secret'\nUSE_TZ = True\nINSTALLED_APPS = ['switchboard']\n"
        f"CHANNEL_LAYERS = {layers!r}\n"
    )
    return "publish_cli_settings"


def _project_env(directory: Path, layers: dict[str, Any]) -> dict[str, str]:
    module = _settings_module(directory, layers)
    return {"DJANGO_SETTINGS_MODULE": module, "PYTHONPATH": f"{ROOT}{os.pathsep}{directory}"}


async def test_through_an_ipc_layer_a_subscriber_in_another_process_receives(tmp_path):
    from switchboard.layers.ipc import IPCChannelLayer

    layers = ipc_layers(tmp_path / "ipc")
    layer = IPCChannelLayer(**layers["default"]["CONFIG"])
    channel_layers.set("default", layer)
    try:
        token = signed_stream_name("orders")
        async with subscribed(token) as (_, ws, start):
            env = _project_env(tmp_path, layers)
            status, out, err = await publish("orders", '{"id": 7}', "--event", "new", **env)
            assert (status, err) == (0, ""), err
            answer = json.loads(out)
            assert answer == {"stream": "orders", "epoch": start["epoch"], "offset": 1}
            pub = await frame(ws)
            assert (pub["offset"], pub["data"], pub["event"]) == (1, {"id": 7}, "new")
    finally:
        await layer.close()


async def test_through_the_layer_refusals_and_failures(tmp_path, unused_tcp_port):
    inmemory = {"default": {"BACKEND": "switchboard.layers.inmemory.InMemoryChannelLayer"}}
    redis = f"redis://127.0.0.1:{unused_tcp_port}"
    down = {"default": {"BACKEND": "switchboard.layers.redis.RedisChannelLayer",
                        "CONFIG": {"hosts": [redis]}}}  # fmt: skip
    (tmp_path / "down").mkdir()
    env = _project_env(tmp_path, inmemory)
    in_memory, bad_event, layer_down, no_settings = await asyncio.gather(
        publish("news", "1", **env),
        publish("news", "1", "--event", "two\nlines", **env),
        publish("news", "1", **_project_env(tmp_path / "down", down)),
        publish("news", "1", DJANGO_SETTINGS_MODULE="no_such_settings_module"),
    )
    status, out, err = in_memory
    assert (status, out) == (2, "")
    assert "lives in this process only" in err
    # The schema is the API's: the same message, the same status as a 400.
    status, out, err = bad_event
    assert (status, out) == (1, "")
    assert "invalid_field: event: " in err
    status, out, err = layer_down
    assert (status, out) == (3, "")
    assert "the publication could not be stored" in err
    status, out, err = no_settings
    assert (status, out) == (2, "")
    assert "cannot set up Django: ModuleNotFoundError" in err
