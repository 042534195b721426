from pathlib import Path

from django.urls import re_path
from django.views.static import serve

import switchboard
from chat import views

# The browser client ships inside the switchboard package. `runserver` (DEBUG) serves it from
# STATIC_URL through django.contrib.staticfiles like any static file; this route does the same
# for `switchboard serve` with DEBUG off, so the example runs without collectstatic and a web
# server in front. A real deployment serves collected static files from nginx instead.
SWITCHBOARD_STATIC = Path(switchboard.__file__).resolve().parent / "static"

urlpatterns = [
    re_path(r"^$", views.index, name="index"),
    # Room names become group names, which allow only these characters.
    re_path(r"^chat/(?P<room>[A-Za-z0-9_-]{1,64})/$", views.room, name="room"),
    re_path(
        r"^static/(?P<path>switchboard/switchboard\.js)$",
        serve,
        {"document_root": SWITCHBOARD_STATIC},
    ),
]
