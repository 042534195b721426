"""A stock Django project (startproject's middleware, SQLite, one template) for bench/django_http.

``BENCH_DJANGO_DB`` names its SQLite file; bench/django_http.py migrates it before serving.
"""
