from django.urls import path

from tests.sites.django_native import views
from tests.sites.django_site.urls import urlpatterns as site_urlpatterns

urlpatterns = [
    *site_urlpatterns,
    path("native/whoami/", views.whoami),
    path("native/async-thread/", views.async_thread),
    path("native/signals/", views.signal_counts),
    path("native/signals/reset/", views.reset_signals),
    path("native/query/", views.query),
    path("native/db-state/", views.db_state),
    path("native/endless-sync/", views.endless_sync),
    path("native/endless-async/", views.endless_async),
    path("native/overlap/", views.overlap),
    path("native/overlap/max/", views.overlap_max),
    path("native/stuck/", views.stuck),
]
