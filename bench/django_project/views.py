import time

from django.contrib.auth.models import Group
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

ITEMS = [{"name": f"item {i}", "price": i * 1.25} for i in range(20)]


def plain(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"Hello, world!", content_type="text/plain")


def spin(request: HttpRequest) -> HttpResponse:
    """A view that computes for ?ms= milliseconds of CPU (the slow view beside WebSockets)."""
    end = time.thread_time() + float(request.GET.get("ms", "5")) / 1000
    while time.thread_time() < end:
        pass
    return HttpResponse(b"spun", content_type="text/plain")


def template(request: HttpRequest) -> HttpResponse:
    return render(request, "page.html", {"title": "Benchmark", "items": ITEMS})


def query(request: HttpRequest) -> HttpResponse:
    group = Group.objects.filter(pk=1).first()
    return HttpResponse(group.name if group else "none", content_type="text/plain")
