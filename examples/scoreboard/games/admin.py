from django.contrib import admin

from games.models import Game, Update

admin.site.register(Game)
admin.site.register(Update)
