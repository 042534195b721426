from django.urls import re_path

from chat import views

urlpatterns = [
    re_path(r"^$", views.index, name="index"),
    # Room names become group names, which allow only these characters.
    re_path(r"^chat/(?P<room>[A-Za-z0-9_-]{1,64})/$", views.room, name="room"),
]
