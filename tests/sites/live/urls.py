"""URLconf of the live-server tests (tests/test_live_server.py)."""

import threading

from django.contrib.auth.models import Group
from django.http import HttpResponse, JsonResponse
from django.urls import path


def hello(request):
    return HttpResponse(f"hello from django via {request.get_host()}", content_type="text/plain")


def groups(request):
    names = Group.objects.filter(name__startswith=request.GET.get("prefix", ""))
    return JsonResponse({"groups": sorted(names.values_list("name", flat=True))})


def whoami(request):
    """Which HTTP path served this: the native one runs views in its pool's threads."""
    native = threading.current_thread().name.startswith("switchboard-wsgi")
    return JsonResponse({"request_class": type(request).__name__, "native": native})


urlpatterns = [path("hello/", hello), path("groups/", groups), path("whoami/", whoami)]
