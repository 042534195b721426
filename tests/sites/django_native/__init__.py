"""tests/sites/django_site plus a few views that look at what runs where (native Django HTTP path).

Served in subprocesses by tests/test_django_native_http.py, with ``DJANGO_SETTINGS_MODULE``
pointing here; ``NATIVE_CONN_MAX_AGE`` sets ``CONN_MAX_AGE``.
"""
