import json

from django.db import models

from switchboard import Group

GROUP = "liveblog"


class Post(models.Model):
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)

    def as_dict(self):
        return {"id": self.pk, "title": self.title, "body": self.body}

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        # Every reader of the blog hears of it. Saved in a view run by a worker, the send
        # goes out when that consumer returns; saved anywhere else, at once.
        Group(GROUP).send({"text": json.dumps(self.as_dict())})
