from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def index(request: HttpRequest) -> HttpResponse:
    return render(request, "chat/index.html")


def room(request: HttpRequest, room: str) -> HttpResponse:
    return render(request, "chat/room.html", {"room": room})
