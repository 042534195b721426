"""A model for the data binding tests."""

from django.conf import settings
from django.db import models


class Note(models.Model):
    title = models.CharField(max_length=40)
    value = models.IntegerField(default=0)
    public = models.BooleanField(default=True)
    secret = models.CharField(max_length=40, blank=True, default="")  # never bound
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )

    class Meta:
        app_label = "binding_app"
