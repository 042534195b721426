"""The publish API (switchboard.streams.views): a real server in the test's loop serving
Django (its real ASGI handler, on the native HTTP path) and a signed stream consumer, both on
one in-memory layer; a real HTTP client publishes and a real WebSocket subscriber receives.
Every refusal, the rate limit (on a clock the test moves), the settings check (E041)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from django.core import checks
from django.core.asgi import get_asgi_application
from django.test import override_settings
from django.urls import path
from websockets.asyncio.client import ClientConnection, connect

from switchboard.layers import channel_layers
from switchboard.layers.inmemory import InMemoryChannelLayer
from switchboard.routing import ProtocolTypeRouter, URLRouter
from switchboard.streams import SignedStreamConsumer, signed_stream_name
from switchboard.streams.api_schema import MAX_DATA_DEPTH
from switchboard.streams.api_settings import check_publish_settings, parse_publish_settings
from switchboard.streams.ratelimit import TokenBuckets, retry_after_seconds, use_clock
from tests.support.serving import serving

pytestmark = pytest.mark.timeout(60)

KEY = "k" * 31 + "1"
OTHER_KEY = "k" * 31 + "2"
PUBLISH = {"KEYS": [KEY, OTHER_KEY], "MAX_BYTES": 1024, "BURST": 1000}
LIMITED = {**PUBLISH, "RATE": 2, "BURST": 3}
AUTH = {"Authorization": f"Bearer {KEY}"}


class Subscriber(SignedStreamConsumer):
    """Stream tokens, and the plain reliable topic ``room`` (a RealtimeConsumer page)."""

    async def topic_allowed(self, topic: str, action: str) -> bool:
        return topic == "room"


APPLICATION = ProtocolTypeRouter(
    {
        "http": get_asgi_application(),
        "websocket": URLRouter([path("ws/", Subscriber.as_asgi())]),
    }
)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Iterator[Clock]:
    fake = Clock()
    use_clock(fake)
    yield fake
    import time

    use_clock(time.monotonic)


@pytest.fixture(autouse=True)
def _site(clock: Clock) -> Iterator[None]:
    with override_settings(ROOT_URLCONF="switchboard.streams.urls", SWITCHBOARD_PUBLISH=PUBLISH):
        channel_layers.set("default", InMemoryChannelLayer())
        yield


@asynccontextmanager
async def site() -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    async with serving(APPLICATION) as address:
        async with httpx.AsyncClient(base_url=f"http://{address}", timeout=10) as client:
            yield client, address


async def frame(ws: ClientConnection) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), 10))


async def subscribe(ws: ClientConnection, topic: str) -> dict[str, Any]:
    await ws.send(json.dumps({"sb": "sub", "topic": topic}))
    subscribed = await frame(ws)
    assert subscribed["sb"] == "subscribed", subscribed
    return subscribed


async def post(client: httpx.AsyncClient, body: Any, **options: Any) -> httpx.Response:
    headers = {**AUTH, **options.pop("headers", {})}
    return await client.post("/publish", json=body, headers=headers, **options)


# -- publishing ----------------------------------------------------------------------------


async def test_a_stream_publication_reaches_a_signed_stream_subscriber():
    token = signed_stream_name("news")
    async with site() as (client, address), connect(f"ws://{address}/ws/") as ws:
        subscribed = await subscribe(ws, token)
        first = await post(client, {"stream": "news", "data": {"n": 1}, "event": "update"})
        second = await post(client, {"stream": "news", "data": "<p>plain text</p>"})

        assert first.status_code == 202, first.text
        assert first.json() == {
            "stream": "news",
            "epoch": subscribed["epoch"],
            "offset": subscribed["offset"] + 1,
        }
        assert first.headers["content-type"] == "application/json"
        assert second.status_code == 202
        assert second.json()["offset"] == subscribed["offset"] + 2
        assert await frame(ws) == {
            "sb": "pub",
            "topic": token,
            "epoch": subscribed["epoch"],
            "offset": subscribed["offset"] + 1,
            "data": {"n": 1},
            "event": "update",
        }
        second_pub = await frame(ws)
        assert (second_pub["offset"], second_pub["data"]) == (
            second.json()["offset"],
            "<p>plain text</p>",
        )
        assert "event" not in second_pub


async def test_a_topic_publication_reaches_a_realtime_subscriber():
    async with site() as (client, address), connect(f"ws://{address}/ws/") as ws:
        subscribed = await subscribe(ws, "room")
        # The second key works as well as the first.
        headers = {"Authorization": f"bearer {OTHER_KEY}"}
        response = await post(client, {"topic": "room", "data": {"text": "hi"}}, headers=headers)

        assert response.status_code == 202, response.text
        position = {"epoch": subscribed["epoch"], "offset": subscribed["offset"] + 1}
        assert response.json() == {"topic": "room", **position}
        pub = {"sb": "pub", "topic": "room", **position, "data": {"text": "hi"}}
        assert await frame(ws) == pub


async def test_a_body_sent_in_chunks_without_content_length_is_read():
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"topic": "room", '
        yield b'"data": {"chunked": true}}'

    async with site() as (client, address), connect(f"ws://{address}/ws/") as ws:
        await subscribe(ws, "room")
        response = await client.post(
            "/publish", content=chunks(), headers={**AUTH, "Content-Type": "application/json"}
        )
        assert response.status_code == 202, response.text
        assert (await frame(ws))["data"] == {"chunked": True}


# -- refusals ------------------------------------------------------------------------------


def _refusal(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"] == error, body
    assert isinstance(body["detail"], str) and body["detail"], body
    return body


@pytest.mark.parametrize("setting", [None, {"KEYS": []}])
async def test_without_keys_the_api_is_off(setting):
    with override_settings(SWITCHBOARD_PUBLISH=setting):
        async with site() as (client, _):
            response = await post(client, {"topic": "room", "data": {}})
    _refusal(response, 404, "not_found")


async def test_methods_other_than_post_are_refused_with_allow():
    async with site() as (client, _):
        for method in ("GET", "PUT", "DELETE"):
            response = await client.request(method, "/publish", headers=AUTH)
            _refusal(response, 405, "method_not_allowed")
            assert response.headers["allow"] == "POST"


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        f"Basic {KEY}",
        "Bearer",
        f"Bearer {KEY[:-1]}",  # a prefix of a real key
        f"Bearer {KEY}x",
        "Bearer " + "k" * 31 + "3",
        ("Bearer " + "\u00e9" * 32).encode(),  # not ASCII, sent as UTF-8 bytes
    ],
)
async def test_a_missing_or_wrong_key_is_refused(authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    async with site() as (client, address), connect(f"ws://{address}/ws/") as ws:
        await subscribe(ws, "room")
        response = await client.post(
            "/publish", json={"topic": "room", "data": {"no": 1}}, headers=headers
        )
        _refusal(response, 401, "unauthorized")
        assert response.headers["www-authenticate"].startswith("Bearer")
        # Nothing was published: the next publication is the subscriber's next frame.
        assert (await post(client, {"topic": "room", "data": {"yes": 1}})).status_code == 202
        assert (await frame(ws))["data"] == {"yes": 1}


async def test_a_body_that_is_not_json_is_refused_as_unsupported():
    async with site() as (client, _):
        for content_type in (None, "text/plain", "application/json; charset=latin-1"):
            headers = {**AUTH, **({"Content-Type": content_type} if content_type else {})}
            response = await client.post("/publish", content=b"{}", headers=headers)
            _refusal(response, 415, "unsupported_media_type")
        # Parameters and case are fine.
        ok = {**AUTH, "Content-Type": "Application/JSON; charset=UTF-8"}
        body = json.dumps({"topic": "room", "data": {}})
        assert (await client.post("/publish", content=body, headers=ok)).status_code == 202


async def test_a_body_over_max_bytes_is_refused_whatever_its_framing():
    big = {"topic": "room", "data": {"text": "x" * 1024}}
    async with site() as (client, _):
        # Declared by Content-Length.
        _refusal(await post(client, big), 413, "too_large")

        # Not declared: read up to the limit and one byte beyond.
        async def chunks() -> AsyncIterator[bytes]:
            text = json.dumps(big).encode()
            for start in range(0, len(text), 100):
                yield text[start : start + 100]

        headers = {**AUTH, "Content-Type": "application/json"}
        response = await client.post("/publish", content=chunks(), headers=headers)
        assert "content-length" not in response.request.headers
        _refusal(response, 413, "too_large")

        # Exactly MAX_BYTES passes.
        padding = 1024 - len(json.dumps({"topic": "room", "data": {"text": ""}}))
        exact = json.dumps({"topic": "room", "data": {"text": "x" * padding}}).encode()
        assert len(exact) == 1024
        headers = {**AUTH, "Content-Type": "application/json"}
        response = await client.post("/publish", content=exact, headers=headers)
        assert response.status_code == 202, response.text


@pytest.mark.parametrize(
    "body",
    [b"{", b"", b'{"topic": "room", "data": {"x": NaN}}', b'{"topic": "room", "data": 1e999}',
     b'{"stream": "\xff"}', b"[" * 100_000 + b"]" * 100_000],
    ids=["truncated", "empty", "nan", "infinite", "not-utf-8", "too-deep-to-parse"],
)  # fmt: skip
async def test_a_body_that_is_not_strict_json_is_refused(body):
    with override_settings(SWITCHBOARD_PUBLISH={**PUBLISH, "MAX_BYTES": 300_000}):
        async with site() as (client, _):
            headers = {**AUTH, "Content-Type": "application/json"}
            response = await client.post("/publish", content=body, headers=headers)
    _refusal(response, 400, "invalid_json")


deep: Any = "leaf"
for _ in range(MAX_DATA_DEPTH):
    deep = [deep]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "(body)"),
        ({"data": 1}, "stream"),
        ({"stream": "news"}, "data"),
        ({"stream": "news", "topic": "room", "data": 1}, "topic"),
        ({"stream": "news", "data": 1, "extra": 1}, "extra"),
        ({"stream": 5, "data": 1}, "stream"),
        ({"stream": "", "data": 1}, "stream"),
        ({"stream": "two\nlines", "data": 1}, "stream"),
        ({"stream": "news", "data": 1, "event": "sb.close"}, "event"),
        ({"stream": "news", "data": 1, "event": None}, "event"),
        ({"stream": "news", "data": 1, "event": "a\r\nb"}, "event"),
        ({"topic": "room", "data": {}, "event": "update"}, "event"),
        ({"topic": "room", "data": "a string"}, "data"),
        ({"topic": "a room", "data": {}}, "topic"),
        ({"topic": "room\n", "data": {}}, "topic"),
        ({"topic": "r" * 100, "data": {}}, "topic"),
        ({"stream": "news", "data": {"big": 2**64}}, "data.big"),
        ({"stream": "news", "data": [deep]}, "data" + "[0]" * MAX_DATA_DEPTH),
    ],
)
async def test_a_body_breaking_the_schema_names_the_field(body, field):
    async with site() as (client, _):
        response = await post(client, body)
    refusal = _refusal(response, 400, "invalid_field")
    assert refusal["field"] == field
    assert refusal["detail"].startswith(f"{field}: ")


async def test_the_deepest_data_allowed_passes():
    async with site() as (client, _):
        response = await post(client, {"stream": "news", "data": deep})
    assert response.status_code == 202, response.text


async def test_a_layer_that_cannot_store_answers_503(unused_tcp_port):
    from switchboard.layers.redis import RedisChannelLayer

    # A Redis layer with no redis-server behind it: its history store raises.
    channel_layers.set("default", RedisChannelLayer(hosts=[f"redis://127.0.0.1:{unused_tcp_port}"]))
    async with site() as (client, _):
        for body in ({"stream": "news", "data": 1}, {"topic": "room", "data": {}}):
            _refusal(await post(client, body), 503, "unavailable")


# -- the rate limit ------------------------------------------------------------------------


async def test_each_key_gets_a_burst_then_its_rate(clock):
    body = {"topic": "room", "data": {}}
    other = {"Authorization": f"Bearer {OTHER_KEY}"}
    with override_settings(SWITCHBOARD_PUBLISH=LIMITED):
        await _burst_then_rate(clock, body, other)


async def _burst_then_rate(clock: Clock, body: dict[str, Any], other: dict[str, str]) -> None:
    async with site() as (client, _):
        statuses = [(await post(client, body)).status_code for _ in range(3)]
        assert statuses == [202] * 3  # BURST
        limited = await post(client, body)
        _refusal(limited, 429, "rate_limited")
        assert limited.headers["retry-after"] == "1"  # half a token missing at 2/s: 0.5 s
        # The other key has a bucket of its own.
        assert (await post(client, body, headers=other)).status_code == 202

        clock.now += 0.4  # 0.8 token: still short
        assert (await post(client, body)).status_code == 429
        clock.now += 0.1
        assert (await post(client, body)).status_code == 202
        assert (await post(client, body)).status_code == 429

        clock.now += 3600  # refilled, but never beyond BURST
        assert [(await post(client, body)).status_code for _ in range(4)] == [202] * 3 + [429]


async def test_retry_after_counts_whole_seconds_up(clock):
    slow = {"KEYS": [KEY], "RATE": 0.1, "BURST": 1}
    with override_settings(SWITCHBOARD_PUBLISH=slow):
        async with site() as (client, _):
            body = {"topic": "room", "data": {}}
            assert (await post(client, body)).status_code == 202
            clock.now += 0.5
            limited = await post(client, body)
            # 9.5 s to the next token: 10.
            assert (limited.status_code, limited.headers["retry-after"]) == (429, "10")


def test_token_buckets():
    clock = Clock()
    buckets = TokenBuckets(rate=4, burst=2, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.25]
    assert buckets.take("b") == 0.0
    clock.now -= 100  # a clock going back refills nothing
    assert buckets.take("a") == 0.25
    clock.now += 100.125
    assert buckets.take("a") == 0.125  # half a token, kept
    clock.now += 0.125
    assert buckets.take("a") == 0.0
    assert [retry_after_seconds(w) for w in (0.001, 1.0, 1.01, 59.9)] == [1, 1, 2, 60]
    with pytest.raises(ValueError):
        TokenBuckets(rate=0, burst=1)


# -- the setting and its check ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "problem", "hint"),
    [
        (["key"], "SWITCHBOARD_PUBLISH is a list, not a dict", "KEYS"),
        ({"KEYS": KEY}, "SWITCHBOARD_PUBLISH['KEYS'] is a str, not a list", "secrets"),
        ({"KEYS": ["short"]}, "SWITCHBOARD_PUBLISH['KEYS'][0] is 5 characters long", "secrets"),
        ({"KEYS": [KEY, 42]}, "SWITCHBOARD_PUBLISH['KEYS'][1] is a int", "string"),
        ({"KEYS": ["x y" * 20]}, "holds spaces", "printable ASCII"),
        ({"KEYS": [KEY], "MAX_BYTE": 10}, "unknown key 'MAX_BYTE'", "Did you mean 'MAX_BYTES'?"),
        ({"KEYS": [KEY], "RATE": 0}, "['RATE'] is 0; it must be a positive number", "100"),
        ({"KEYS": [KEY], "BURST": 1.5}, "['BURST'] is 1.5; it must be a positive integer", "200"),
        ({"KEYS": [KEY], "MAX_BYTES": True}, "['MAX_BYTES'] is True", "65536"),
    ],
)
def test_a_setting_that_cannot_work_fails_the_check(setting, problem, hint):
    with override_settings(SWITCHBOARD_PUBLISH=setting):
        errors = [e for e in checks.run_checks(tags=["switchboard"]) if e.id == "switchboard.E041"]
    assert len(errors) == 1, errors
    assert problem in errors[0].msg
    assert hint in errors[0].hint
    with pytest.raises(Exception, match="SWITCHBOARD_PUBLISH"):
        parse_publish_settings(setting)


def test_a_key_is_never_quoted_in_a_message():
    secret = "s" * 20
    with override_settings(SWITCHBOARD_PUBLISH={"KEYS": [secret, secret + " " * 20]}):
        messages = check_publish_settings(None)
    assert len(messages) == 2
    assert all(secret not in m.msg and secret not in (m.hint or "") for m in messages)


def test_a_good_setting_and_none_pass_the_check():
    for setting in ({"KEYS": [KEY], "RATE": 0.5, "BURST": 1, "MAX_BYTES": 10}, {"KEYS": []}):
        with override_settings(SWITCHBOARD_PUBLISH=setting):
            assert check_publish_settings(None) == []
    with override_settings():
        from django.conf import settings

        del settings.SWITCHBOARD_PUBLISH
        assert check_publish_settings(None) == []
    parsed = parse_publish_settings({"KEYS": [KEY]})
    assert (parsed.keys, parsed.max_bytes, parsed.rate, parsed.burst) == (
        (KEY.encode(),),
        65536,
        100.0,
        200,
    )


async def test_an_invalid_setting_at_request_time_answers_500_without_detail():
    with override_settings(SWITCHBOARD_PUBLISH={"KEYS": ["short-key"]}):
        async with site() as (client, _):
            response = await post(client, {"topic": "room", "data": {}})
    body = _refusal(response, 500, "misconfigured")
    assert "short-key" not in body["detail"]


def test_the_documented_json_schema_is_the_one_enforced():
    from pathlib import Path

    from switchboard.streams.api_schema import PUBLICATION_SCHEMA

    page = Path(__file__).resolve().parents[2] / "docs/topics/signed-streams.md"
    section = page.read_text().split("## Publishing from other services", 1)[1]
    blocks = [b.split("```", 1)[0] for b in section.split("```json\n")[1:]]
    documented = [json.loads(b) for b in blocks if '"$schema"' in b]
    assert documented == [PUBLICATION_SCHEMA]
