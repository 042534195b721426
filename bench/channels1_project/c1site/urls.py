"""Django's views, for the http.request messages no route takes."""

from django.http import HttpResponse

try:
    from django.urls import re_path
except ImportError:  # Django 1.11
    from django.conf.urls import url as re_path


def index(request):
    return HttpResponse("c1chat\n", content_type="text/plain")


urlpatterns = [re_path(r"^$", index)]
