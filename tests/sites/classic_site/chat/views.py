from django.shortcuts import render


def room(request, name):
    return render(request, "chat/room.html", {"room": name})
