"""Included under ``path=r"^/bindings"``."""

from bindings.consumers import Demultiplexer
from switchboard.routing import route_class

channel_routing = [route_class(Demultiplexer, path=r"^/stream/$")]
