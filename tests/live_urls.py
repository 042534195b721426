"""URLconf of the live-server tests (tests/test_live_server.py)."""

from django.contrib.auth.models import Group
from django.http import HttpResponse, JsonResponse
from django.urls import path


def hello(request):
    return HttpResponse(f"hello from django via {request.get_host()}", content_type="text/plain")


def groups(request):
    return JsonResponse({"groups": sorted(Group.objects.values_list("name", flat=True))})


urlpatterns = [path("hello/", hello), path("groups/", groups)]
