from django.db import models


class Tick(models.Model):
    value = models.IntegerField(default=0)

    class Meta:
        app_label = "binding_site"
