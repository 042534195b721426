"""Signed streams over a real WebSocket: switchboard-style frames, refusals, recovery, sync
publishing from threads, HTML rendered once for every subscriber."""

from __future__ import annotations

import asyncio
import time

import pytest
from django.core import signing
from django.test import override_settings
from websockets.exceptions import InvalidStatus

from switchboard.streams import (
    apublish,
    apublish_html,
    publish,
    signed_stream_name,
    stream_for,
)
from switchboard.streams.tokens import SALT
from tests.streams.site import Socket, application, new_user, session_cookie
from tests.support.serving import serving


def _expired_token(name: str, lifetime: int = 60) -> str:
    """A token stamped two minutes ago with a one-minute lifetime: expired, no waiting."""

    class TwoMinutesAgo(signing.TimestampSigner):
        def timestamp(self) -> str:
            return signing.b62_encode(int(time.time()) - 120)

    return TwoMinutesAgo(salt=SALT).sign_object({"s": name, "e": lifetime})


async def test_subscribe_publish_and_recover_with_switchboard_frames(layer):
    token = signed_stream_name("news")
    async with serving(application) as host:
        client = await Socket.open(host)
        subscribed = await client.subscribe(token)
        assert subscribed["sb"] == "subscribed" and subscribed["topic"] == token
        epoch = subscribed["epoch"]

        await apublish("news", {"headline": "one"}, event="update")
        await apublish("news", "<p>two</p>")
        first, second = await client.next(), await client.next()
        assert first == {
            "sb": "pub", "topic": token, "epoch": epoch, "offset": subscribed["offset"] + 1,
            "data": {"headline": "one"}, "event": "update",
        }  # fmt: skip
        assert (second["data"], "event" in second) == ("<p>two</p>", False)
        await client.close()

        # Missed while away: recovered in order after the last offset seen.
        await apublish("news", {"headline": "three"})
        await apublish("news", {"headline": "four"})
        again = await Socket.open(host)
        resumed = await again.subscribe(token, epoch=epoch, offset=second["offset"])
        assert resumed["recovered"] is True and resumed["topic"] == token
        missed = [await again.next(), await again.next()]
        assert [m["data"]["headline"] for m in missed] == ["three", "four"]
        assert [m["offset"] for m in missed] == [second["offset"] + 1, second["offset"] + 2]

        # Unsubscribing by token stops publications, and says so under the token.
        await again.send({"sb": "unsub", "topic": token})
        assert await again.next() == {"sb": "unsubscribed", "topic": token}
        await apublish("news", {"headline": "five"})
        await again.send({"sb": "sub", "topic": "not-a-token"})
        assert (await again.next())["sb"] == "error"  # the next frame: nothing came between
        await again.close()


async def test_forged_and_foreign_tokens_are_refused_with_their_reason(memory_layer):
    news = signed_stream_name("news")
    value, _, signature = news.rpartition(":")
    mangled = f"{value}:{signature[:-2]}xx"
    other_salt = signing.dumps({"s": "news"})  # Django's default salt: not a stream token
    async with serving(application) as host:
        client = await Socket.open(host)
        for token in (mangled, other_salt, "news", "sbs.news"):
            refused = await client.subscribe(token)
            assert refused == {
                "sb": "error",
                "topic": token,
                "error": "stream token invalid (forged, mangled or signed with another key)",
            }
        await client.close()


async def test_a_token_admits_its_own_stream_only(memory_layer):
    news, secret = signed_stream_name("news"), signed_stream_name("secret")
    async with serving(application) as host:
        client = await Socket.open(host)
        await client.subscribe(news)
        await apublish("secret", {"for": "others"})
        await apublish("news", {"for": "you"})
        got = await client.next()
        assert (got["topic"], got["data"]) == (news, {"for": "you"})

        # A second token for a stream already subscribed (a refreshed one, say) is refused
        # until the first is unsubscribed, rather than silently stealing its publications.
        other_news = signed_stream_name("news", expires=600)
        refused = await client.subscribe(other_news)
        assert refused["error"] == "stream already subscribed with another token"
        assert (await client.subscribe(secret))["topic"] == secret
        await client.close()


async def test_an_expired_token_is_refused(memory_layer):
    expired = _expired_token("news")
    fresh = signed_stream_name("news", expires=60)
    async with serving(application) as host:
        client = await Socket.open(host)
        refused = await client.subscribe(expired)
        assert refused == {"sb": "error", "topic": expired, "error": "stream token expired"}
        assert (await client.subscribe(fresh))["sb"] == "subscribed"
        await client.close()

        # At connect (the htmx format), the handshake is refused with the reason as its text.
        with pytest.raises(InvalidStatus) as refused_handshake:
            await Socket.open(host, f"stream={expired}&format=html")
        response = refused_handshake.value.response
        assert response.status_code == 403 and response.body == b"stream token expired\n"


async def test_a_user_bound_token_needs_its_own_user(memory_layer):
    alice, bob = await new_user(), await new_user()
    inbox = stream_for(alice, "inbox")
    token = signed_stream_name(inbox, user=alice)
    async with serving(application) as host:
        anonymous = await Socket.open(host)
        refused = await anonymous.subscribe(token)
        assert refused["error"] == "stream token belongs to a user: log in to use it"
        await anonymous.close()

        other = await Socket.open(host, cookie=await session_cookie(bob))
        assert (await other.subscribe(token))["error"] == "stream token belongs to another user"
        await other.close()

        owner = await Socket.open(host, cookie=await session_cookie(alice))
        assert (await owner.subscribe(token))["sb"] == "subscribed"
        await apublish(inbox, {"unread": 1})
        assert (await owner.next())["data"] == {"unread": 1}
        await owner.close()


async def test_publish_from_sync_code_in_a_thread(layer):
    token = signed_stream_name("jobs")
    async with serving(application) as host:
        client = await Socket.open(host)
        await client.subscribe(token)
        # A plain thread: no event loop of its own, no server loop in its context.
        position = await asyncio.to_thread(publish, "jobs", {"done": 3}, event="progress")
        got = await client.next()
        assert (got["data"], got["event"], got["offset"]) == (
            {"done": 3},
            "progress",
            position.offset,
        )
        await client.close()

    with pytest.raises(RuntimeError, match="await apublish"):
        publish("jobs", {"done": 4})  # a running loop here: blocking it could deadlock
    with pytest.raises(TypeError, match="JSON"):
        await asyncio.to_thread(publish, "jobs", {"when": object()})


class RenderCount:
    """Counts how often a template asked for it: once per rendering."""

    def __init__(self) -> None:
        self.renders = 0

    def __str__(self) -> str:
        self.renders += 1
        return str(self.renders)


TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "OPTIONS": {
            "loaders": [
                (
                    "django.template.loaders.locmem.Loader",
                    {"card.html": '<div id="card">{{ title }} #{{ count }}</div>'},
                )
            ]
        },
    }
]


@override_settings(TEMPLATES=TEMPLATES)
async def test_publish_html_renders_once_for_every_subscriber(memory_layer):
    token = signed_stream_name("cards")
    async with serving(application) as host:
        frames = await Socket.open(host)
        await frames.subscribe(token)
        htmx = await Socket.open(host, f"stream={token}&format=html")

        count = RenderCount()
        await apublish_html("cards", "card.html", {"title": "Hello", "count": count})
        html = '<div id="card">Hello #1</div>'
        assert await htmx.text() == html  # a bare text frame, as htmx's ws extension swaps
        pub = await frames.next()
        assert pub["data"] == html
        assert count.renders == 1

        # The sync flavour, from a thread, renders once too.
        await asyncio.to_thread(publish_html_in_thread, "cards", {"title": "Again", "count": count})
        assert await htmx.text() == '<div id="card">Again #2</div>'
        assert (await frames.next())["data"] == '<div id="card">Again #2</div>'
        assert count.renders == 2
        await frames.close()
        await htmx.close()


def publish_html_in_thread(stream: str, context: dict) -> None:
    from switchboard.streams import publish_html

    publish_html(stream, "card.html", context, event="card")


async def test_plain_formats_need_their_parameters(memory_layer):
    token = signed_stream_name("news")
    async with serving(application) as host:
        for query, text in [
            (f"stream={token}&format=events", b"format=events is for EventSource"),
            (f"stream={token}&format=xml", b"unknown format 'xml'"),
            ("format=html", b"?stream=TOKEN is missing"),
        ]:
            with pytest.raises(InvalidStatus) as refused:
                await Socket.open(host, query)
            assert refused.value.response.status_code == 400
            assert refused.value.response.body.startswith(text)
