from django.urls import path

from blog.consumers import BlogStreams

websocket_urlpatterns = [path("ws/", BlogStreams.as_asgi())]
