"""Readers of the live blog: every socket joins the blog's Group at connect (answering
nothing accepts it). The blog is read-only: ``websocket.receive`` is not routed."""

from liveblog.models import GROUP
from switchboard import Group


def reader_connect(message):
    Group(GROUP).add(message.reply_channel)


def reader_disconnect(message):
    Group(GROUP).discard(message.reply_channel)
