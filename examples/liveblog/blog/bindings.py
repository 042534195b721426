"""The live part: every saved Post is pushed to the readers allowed to see it."""

from blog.models import Post
from switchboard.binding import WebsocketBinding


class PostBinding(WebsocketBinding):
    model = Post
    stream = "posts"
    fields = ["title", "body", "published", "author", "created"]
    form_fields = ["title", "body", "published"]  # the author is whoever writes it

    def has_permission(self, user, action, pk):
        if action == "subscribe":
            return True  # anyone may read; can_view below hides drafts
        # Writing over the socket needs the same permission as in the admin.
        return self.model_permission(user, action)

    def can_view(self, user, data):
        return data["published"] or user.is_staff

    def get_form(self, data, instance=None):
        form = super().get_form(data, instance)
        if instance is None and self.user.is_authenticated:
            form.instance.author = self.user
        return form
