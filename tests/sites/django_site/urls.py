from django.contrib import admin
from django.urls import path

from tests.sites.django_site import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("contact/", views.contact, name="contact"),
    path("contact/done/", views.contact_done, name="contact-done"),
    path("upload/", views.upload),
    path("raw-body/", views.raw_body),
    path("stream/", views.stream),
    path("download/", views.download),
    path("async/", views.async_view),
    path("hello/", views.hello),
    path("counter/", views.counter),
]
