from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from chat.guests import SESSION_KEY, new_guest_name


def index(request: HttpRequest) -> HttpResponse:
    return render(request, "chat/index.html")


def room(request: HttpRequest, room: str) -> HttpResponse:
    if not request.user.is_authenticated and SESSION_KEY not in request.session:
        # Named here, over HTTP, because only a response can set the session cookie that the
        # page's WebSocket handshake then carries.
        request.session[SESSION_KEY] = new_guest_name()
    return render(request, "chat/room.html", {"room": room})
