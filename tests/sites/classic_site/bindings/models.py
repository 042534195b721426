from django.db import models


class Item(models.Model):
    name = models.CharField(max_length=100)
    quantity = models.IntegerField(default=0)
    note = models.CharField(max_length=100, blank=True, default="")  # not bound
