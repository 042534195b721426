"""AsyncHttpConsumer.send_headers sends header pairs as given, in order, whatever their shape.

ASGI's ``http.response.start`` takes ``headers`` as an iterable of ``[name, value]`` two-item
iterables (ASGI HTTP spec, "Response Start - send event"); Channels passes the caller's pairs
through untouched, so code that inspects sent messages sees what it gave.
"""

from __future__ import annotations

from switchboard.generic.http import AsyncHttpConsumer
from switchboard.testing import ApplicationCommunicator, HttpCommunicator


def _consumer(headers):
    class Answer(AsyncHttpConsumer):
        async def handle(self, body):
            await self.send_headers(status=200, headers=headers)
            await self.send_body(b"ok")

    return Answer.as_asgi()


async def _start_message(headers) -> dict:
    # The raw http.response.start message, before any client-side normalisation.
    communicator = ApplicationCommunicator(
        _consumer(headers), {"type": "http", "method": "GET", "path": "/", "headers": []}
    )
    await communicator.send_input({"type": "http.request", "body": b""})
    start = await communicator.receive_output(1)
    assert (await communicator.receive_output(1))["body"] == b"ok"
    await communicator.wait(1)
    return start


async def test_tuple_headers_are_sent_unchanged_and_in_order():
    headers = [
        (b"content-type", b"text/plain"),
        (b"set-cookie", b"a=1"),
        (b"x-order", b"2"),
        (b"set-cookie", b"b=2"),
    ]
    start = await _start_message(headers)
    assert start["headers"] == headers
    assert all(type(pair) is tuple for pair in start["headers"])


async def test_list_pairs_stay_lists():
    headers = [[b"x-a", b"1"], [b"x-b", b"2"]]
    assert (await _start_message(headers))["headers"] == headers


async def test_dict_headers_become_pairs_in_insertion_order():
    start = await _start_message({b"x-z": b"last-name-first", b"content-type": b"text/plain"})
    assert start["headers"] == [(b"x-z", b"last-name-first"), (b"content-type", b"text/plain")]


async def test_str_names_and_values_are_encoded_into_tuples():
    start = await _start_message([("X-Name", "café".encode()), ("x-text", "plain")])
    assert start["headers"] == [(b"X-Name", "café".encode()), (b"x-text", b"plain")]
    start = await _start_message({"Content-Type": "text/plain"})
    assert start["headers"] == [(b"Content-Type", b"text/plain")]


async def test_send_response_passes_headers_through_too():
    class Answer(AsyncHttpConsumer):
        async def handle(self, body):
            await self.send_response(201, b"made", headers=[(b"location", b"/things/1")])

    response = await HttpCommunicator(Answer.as_asgi(), "POST", "/things").get_response()
    assert response == {"status": 201, "headers": [(b"location", b"/things/1")], "body": b"made"}
