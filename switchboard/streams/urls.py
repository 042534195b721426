"""URLconf of the publish API: ``path("switchboard/", include("switchboard.streams.urls"))``
serves it at ``/switchboard/publish`` (see :mod:`switchboard.streams.views`)."""

from django.urls import path

from switchboard.streams import views

urlpatterns = [path("publish", views.publish, name="switchboard-publish")]
