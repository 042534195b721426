"""A small, ordinary Django project, served by ``switchboard serve`` in tests/test_django_http.py.

Everything lives in one temporary directory named by ``DJANGO_SITE_DIR`` (the SQLite database and
the file the download view serves), so the server subprocess, the bootstrap subprocess and the
test share it.
"""
