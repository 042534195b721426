from bindings.binding import GROUP, ItemBinding
from switchboard.generic.websockets import WebsocketDemultiplexer


class Demultiplexer(WebsocketDemultiplexer):
    # The user from the HTTP session, kept in the channel session: the binding's
    # has_permission sees it on every frame.
    http_user = True

    consumers = {"items": ItemBinding.consumer}

    def connection_groups(self, **kwargs):
        return [GROUP]
