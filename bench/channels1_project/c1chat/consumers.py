"""A chat written the Channels 1 way: function consumers, a group per room, channel sessions.

Every text a member sends goes to everyone in the room, the sender included.
"""

from .compat import Group, channel_session


def room_group(room):
    return Group(f"room-{room}")


@channel_session
def ws_connect(message, room):
    message.reply_channel.send({"accept": True})
    message.channel_session["room"] = room
    room_group(room).add(message.reply_channel)


@channel_session
def ws_message(message):
    room_group(message.channel_session["room"]).send({"text": message["text"]})


@channel_session
def ws_disconnect(message):
    room = message.channel_session.get("room")
    if room is not None:
        room_group(room).discard(message.reply_channel)
