"""The Python samples the topic guides include from tests/docs_samples/ run as shown."""

from __future__ import annotations

from django.urls import path

from switchboard.routing import URLRouter
from switchboard.testing import WebsocketCommunicator
from tests.docs_samples.realtime import Scoreboard, presence_anywhere

scoreboard = URLRouter([path("ws/match/<int:match>/", Scoreboard.as_asgi())])


async def test_the_scoreboard_publishes_cheers_and_tracks_its_viewers():
    fan = WebsocketCommunicator(scoreboard, "/ws/match/42/")
    assert (await fan.connect())[0]
    await fan.send_json_to({"sb": "presence", "topic": "match_42"})
    state = (await fan.receive_json_from())["state"]
    assert [metas["metas"][0]["role"] for metas in state.values()] == ["viewer"]
    await fan.send_json_to({"sb": "sub", "topic": "match_42", "history": 20})
    assert (await fan.receive_json_from())["sb"] == "subscribed"
    await fan.send_json_to({"cheer": " goal! "})
    pub = await fan.receive_json_from()
    assert (pub["sb"], pub["offset"], pub["data"]) == ("pub", 1, {"cheer": "goal!"})
    await fan.send_json_to({"sb": "sub", "topic": "match_7"})  # not this socket's match
    assert (await fan.receive_json_from())["error"] == "subscribe refused"
    await fan.disconnect()


async def test_presence_from_any_code():
    assert await presence_anywhere() == {"alice": {"metas": [{"device": "phone", "ref": "conn-1"}]}}


async def test_the_concurrent_search_keeps_one_tabs_order():
    from tests.docs_samples.streams import Search

    client = WebsocketCommunicator(Search.as_asgi(), "/ws/search/")
    assert (await client.connect())[0]
    for query in ("a", "b", "c"):
        await client.send_json_to({"tab": 1, "q": query})
    answers = [await client.receive_json_from(timeout=5) for _ in range(3)]
    assert [answer["results"] for answer in answers] == [["A"], ["B"], ["C"]]
    await client.disconnect()
