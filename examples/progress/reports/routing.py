from django.urls import path

from reports.consumers import ProgressConsumer

websocket_urlpatterns = [path("ws/progress/", ProgressConsumer.as_asgi())]
