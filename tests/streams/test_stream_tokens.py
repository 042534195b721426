"""Stream tokens, names and topics, and the template tags that hand tokens to pages."""

from __future__ import annotations

import time
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core import signing
from django.template import engines
from django.test import override_settings

from switchboard.layers.base import BaseChannelLayer
from switchboard.streams import (
    InvalidStreamName,
    StreamTokenError,
    signed_stream_name,
    stream_for,
    stream_topic,
    validate_event_name,
    verify_stream_token,
)
from tests.streams.site import new_user


def _reason(token, **kwargs) -> str:
    with pytest.raises(StreamTokenError) as error:
        verify_stream_token(token, **kwargs)
    return error.value.reason


async def test_tokens_verify_for_their_stream_user_and_lifetime():
    alice, bob = await new_user(), await new_user()
    assert verify_stream_token(signed_stream_name("news")) == "news"
    assert verify_stream_token(signed_stream_name("news"), user=bob) == "news"

    bound = signed_stream_name("inbox", user=alice, expires=timedelta(minutes=5))
    assert verify_stream_token(bound, user=alice) == "inbox"
    assert _reason(bound, user=bob) == "user"
    assert _reason(bound) == _reason(bound, user=AnonymousUser()) == "user"

    # Expiry is the signing stamp plus the lifetime, checked with signing's max_age.
    old = signing.TimestampSigner(salt="switchboard.streams")
    old.timestamp = lambda: signing.b62_encode(int(time.time()) - 30)  # type: ignore[method-assign]
    assert _reason(old.sign_object({"s": "news", "e": 10})) == "expired"
    assert verify_stream_token(old.sign_object({"s": "news", "e": 60})) == "news"

    value, _, signature = signed_stream_name("news").rpartition(":")
    for forged in [
        f"{value}:{signature[::-1]}",
        signing.dumps({"s": "news"}),  # another salt
        old.sign_object(["news"]),  # a payload of another shape
        old.sign_object({"s": "", "e": 10}),
        "",
        None,
        "x" * 5000,
    ]:
        assert _reason(forged) == "forged"

    with pytest.raises(ValueError, match="logged-in user"):
        signed_stream_name("inbox", user=AnonymousUser())
    with pytest.raises(ValueError, match="positive"):
        signed_stream_name("news", expires=0)
    assert stream_for(alice, "inbox") == f"inbox.user.{alice.pk}"


def test_every_stream_name_has_a_topic_every_layer_accepts():
    assert stream_topic("news") == "sbs.news"
    assert stream_topic("inbox.user.42") == "sbs.inbox.user.42"
    names = ["Bücher", "room 12", "a/b", "x" * 96, "x" * 200, "news!"]
    topics = [stream_topic(name) for name in names]
    for name, topic in zip(names, topics, strict=True):
        assert BaseChannelLayer.require_valid_group_name(topic)
        assert topic.startswith("sbs-h.") and len(topic) == 70, name
    assert len(set(topics)) == len(topics)  # hashed names don't collide
    assert stream_topic("sbs.news") == "sbs.sbs.news"  # its own namespace, even so
    assert stream_topic("x" * 95) == "sbs." + "x" * 95  # the longest plain name kept as is
    BaseChannelLayer.require_valid_group_name(stream_topic("x" * 95))

    for bad in ["", "x" * 201, "line\nbreak", "tab\there", 42]:
        with pytest.raises(InvalidStreamName):
            stream_topic(bad)  # type: ignore[arg-type]
    for bad_event in ["", "two\nlines", "sb.resync", "e" * 101]:
        with pytest.raises(InvalidStreamName):
            validate_event_name(bad_event)
    assert validate_event_name("card-updated") == "card-updated"


def _render(source: str, **context) -> str:
    engine = engines["django"]
    return engine.from_string(source).render(context)


TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]


@override_settings(TEMPLATES=TEMPLATES)
async def test_template_tags_hand_out_tokens_and_eventsource_urls():
    from asgiref.sync import sync_to_async

    alice = await new_user()
    render = sync_to_async(_render)

    token = (await render('{% load switchboard %}{% stream_token "news" %}')).strip()
    assert verify_stream_token(token) == "news"

    mine = await render(
        '{% load switchboard %}{% stream_token "inbox" for_user=user expires=3600 as t %}[{{ t }}]',
        user=alice,
    )
    token = mine.strip()[1:-1]
    assert verify_stream_token(token, user=alice) == f"inbox.user.{alice.pk}"
    assert _reason(token) == "user"

    url = await render('<a href="{% load switchboard %}{% stream_url "news" history=5 %}">')
    assert "&amp;" in url  # escaped for the HTML attribute
    href = url.split('"')[1].replace("&amp;", "&")
    parts = urlsplit(href)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    assert parts.path == "/streams/"
    assert (query["format"], query["sb_transport"], query["history"]) == ("events", "sse", "5")
    assert verify_stream_token(query["stream"]) == "news"

    with override_settings(SWITCHBOARD_STREAMS_URL="/live/?site=1"):
        url = await render('{% load switchboard %}{% stream_url "news" %}')
    assert url.startswith("/live/?site=1&amp;stream=")
