from pathlib import Path

from django.urls import path
from django.views.static import serve

import switchboard
from reports import views

# switchboard.js ships inside the package. In DEBUG, `runserver` serves it as a static file;
# this route serves it under `switchboard serve` too (DEBUG off, no collectstatic), so the
# example runs alone. Behind a web server, serve collected static files from there instead.
CLIENT_DIR = Path(switchboard.__file__).resolve().parent / "static"

urlpatterns = [
    path("", views.index, name="index"),
    path("build/", views.build, name="build"),
    path(
        "static/switchboard/switchboard.js",
        serve,
        {"path": "switchboard/switchboard.js", "document_root": CLIENT_DIR},
    ),
]
