"""Exceptions shared by consumers, routing and channel layers (names match Django Channels)."""


class RequestAborted(Exception):
    """The client went away while its request body was being read."""


class RequestTimeout(RequestAborted):
    """The client took too long to send its request body."""


class InvalidChannelLayerError(ValueError):
    """A CHANNEL_LAYERS entry is missing, malformed or names an unknown backend."""


class AcceptConnection(Exception):
    """Raised inside a WebSocket consumer's connect handling to accept the socket."""


class DenyConnection(Exception):
    """Raised inside a WebSocket consumer's connect handling to reject the socket."""


class ChannelFull(Exception):
    """A send would put a channel over its capacity; the message was not stored."""


class MessageTooLarge(Exception):
    """A message is larger than the transport (or layer) accepts."""


class StopConsumer(Exception):
    """Raised by a handler to end the consumer cleanly; the application coroutine returns."""


class ConsumeLater(Exception):
    """Raised by a Channels 1 consumer: put the message back at the end of its channel, to be
    consumed again later (at most ten times)."""


class SendNotAvailableOnDemultiplexer(Exception):
    """A consumer behind a demultiplexer sent a frame of its own: it must go through the
    ``multiplexer`` it was given, which wraps it in its stream."""
