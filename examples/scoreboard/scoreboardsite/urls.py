from django.conf import settings
from django.contrib import admin
from django.urls import path
from django.views.static import serve

from games import views

urlpatterns = [
    path("", views.board, name="board"),
    path("ws/", views.ws_board, name="ws-board"),
    path("staff/", views.staff, name="staff"),
    path("admin/", admin.site.urls),
]

if settings.HTMX_DIR:  # self-hosted htmx (see settings.HTMX_SCRIPTS)
    urlpatterns.append(
        path("htmx/<path:path>", serve, {"document_root": settings.HTMX_DIR}),
    )
