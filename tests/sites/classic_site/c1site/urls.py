from django.contrib.auth import views as auth_views
from django.http import HttpResponse
from django.urls import path
from liveblog.views import posts

from chat.views import room


def index(request):
    who = request.user.username if request.user.is_authenticated else "anonymous"
    return HttpResponse(f"c1site: hello {who}")


def favicon(request):
    return HttpResponse(status=204)  # browsers ask for one on every page


urlpatterns = [
    path("", index),
    path("favicon.ico", favicon),
    path("accounts/login/", auth_views.LoginView.as_view()),
    path("rooms/<slug:name>/", room),
    path("liveblog/posts/", posts),
]
