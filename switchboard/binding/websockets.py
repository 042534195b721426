"""Channels 1's ``channels.binding.websockets``: ``WebsocketBinding``, the binding whose
inbound side is a consumer of ``manage.py runworker`` (see :mod:`switchboard.classic.binding`).

``switchboard.binding.WebsocketBinding`` is another class: the ASGI binding of the package
root. Importing this module leaves that name as it is.
"""

from switchboard.classic.binding import Binding, WebsocketBinding

__all__ = ["Binding", "WebsocketBinding"]
