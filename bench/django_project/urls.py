from django.urls import path

from bench.django_project import views

urlpatterns = [
    path("plain/", views.plain),
    path("template/", views.template),
    path("query/", views.query),
    path("spin/", views.spin),
]
