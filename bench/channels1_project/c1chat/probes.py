"""Consumers that record what a stack does, for ``bench/channels1.py --probe``.

Each writes one JSON line per message it sees to the file named by ``C1_PROBE_LOG`` (the
worker's side of the story); bench/channels1_project/probe_client.py is the client's side.
Python 3.6 compatible: the original stack imports this module.
"""

import json
import os

from .compat import Channel, route

SINK = "c1probe.sink"


def described(value):
    """A value as [type name, repr], so bytes and str stay apart in the log."""
    if isinstance(value, (list, tuple)):
        return [type(value).__name__, [described(v) for v in value]]
    return [type(value).__name__, repr(value)]


def record(event, message, **extra):
    path = os.environ.get("C1_PROBE_LOG")
    if not path:
        return
    line = {
        "event": event,
        "channel": message.channel.name,
        "content": {key: described(value) for key, value in message.content.items()},
    }
    line.update(extra)
    with open(path, "a") as f:
        f.write(json.dumps(line) + "\n")


def probe_connect(message, kind):
    """Records the connect message; /probe/reject/ refuses with {"close": True}."""
    record("connect", message, kind=kind)
    if kind == "reject":
        message.reply_channel.send({"close": True})
    else:
        message.reply_channel.send({"accept": True})


def probe_receive(message, kind):
    """/probe/raise/: two held sends (the reply channel and a named channel), then raises."""
    record("receive", message, kind=kind)
    if kind == "raise":
        message.reply_channel.send({"text": "reply-sent-before-raise"})
        Channel(SINK).send({"reply": message.reply_channel.name, "text": "sink-sent-before-raise"})
        raise RuntimeError("probe: a consumer raising after two sends")
    message.reply_channel.send({"text": "ok"})


def probe_sink(message):
    record("sink", message)
    Channel(message["reply"]).send({"text": "sink-got:" + message["text"]})


def probe_disconnect(message, kind):
    record("disconnect", message, kind=kind)


def probe_http(message):
    record("http", message)
    message.reply_channel.send(
        {"status": 200, "headers": [[b"content-type", b"text/plain"]], "content": b"probed\n"}
    )


KIND = r"^/probe/(?P<kind>[a-zA-Z0-9%]+)/$"  # %: is the path unquoted?

routes = [
    route("websocket.connect", probe_connect, path=KIND),
    route("websocket.receive", probe_receive, path=KIND),
    route("websocket.disconnect", probe_disconnect, path=KIND),
    route(SINK, probe_sink),
    route("http.request", probe_http, path=r"^/probe/http/$"),
]
