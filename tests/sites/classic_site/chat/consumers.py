"""Chat rooms, as the Channels 1.1 getting-started guide builds them: the room comes from the
path (a route filter's named group), is kept in the channel session at connect, and every
socket in the room is in the room's Group. Strict ordering: a socket's messages run in the
order it sent them, whichever worker takes them."""

import json

from switchboard import Group
from switchboard.auth import channel_session_user, channel_session_user_from_http
from switchboard.sessions import enforce_ordering


def room_group(room):
    return Group(f"chat-{room}")


def username(user):
    return user.username if user.is_authenticated else "anonymous"


@enforce_ordering
@channel_session_user_from_http
def chat_connect(message, room):
    message.reply_channel.send({"accept": True})
    message.channel_session["room"] = room
    room_group(room).add(message.reply_channel)


@enforce_ordering
@channel_session_user
def chat_message(message, room):
    # The room the socket joined, from its session (the path says the same).
    joined = message.channel_session["room"]
    frame = {"room": joined, "user": username(message.user), "text": message["text"]}
    room_group(joined).send({"text": json.dumps(frame)})


@enforce_ordering
@channel_session_user
def chat_disconnect(message, room):
    room_group(message.channel_session["room"]).discard(message.reply_channel)
