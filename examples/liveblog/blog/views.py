from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def index(request: HttpRequest) -> HttpResponse:
    # The posts arrive over the WebSocket (a snapshot on subscribe, then live changes).
    return render(request, "blog/index.html")
