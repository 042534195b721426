from django.contrib.auth.models import Group
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

ITEMS = [{"name": f"item {i}", "price": i * 1.25} for i in range(20)]


def plain(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"Hello, world!", content_type="text/plain")


def template(request: HttpRequest) -> HttpResponse:
    return render(request, "page.html", {"title": "Benchmark", "items": ITEMS})


def query(request: HttpRequest) -> HttpResponse:
    group = Group.objects.filter(pk=1).first()
    return HttpResponse(group.name if group else "none", content_type="text/plain")
