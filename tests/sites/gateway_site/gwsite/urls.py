import os

from django.http import HttpResponse
from django.urls import path


def hello(request):
    return HttpResponse(f"served over HTTP by the gateway, pid {os.getpid()}")


urlpatterns = [path("", hello)]
