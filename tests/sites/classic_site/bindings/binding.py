"""The data-binding example of the Channels 1.1 docs, on an Item model: saves and deletes go
out to the "items" group; staff users may create, update and delete over the socket."""

from bindings.models import Item
from switchboard.binding.websockets import WebsocketBinding

GROUP = "items-updates"


class ItemBinding(WebsocketBinding):
    model = Item
    stream = "items"
    fields = ["name", "quantity"]

    @classmethod
    def group_names(cls, instance):
        return [GROUP]

    def has_permission(self, user, action, pk):
        return user.is_authenticated and user.is_staff
