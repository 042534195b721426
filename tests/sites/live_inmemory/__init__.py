"""A project on Django's default in-memory SQLite test database, run by Django's test runner.

tests/test_live_server.py runs ``manage.py test``-style in a subprocess with these settings:
the live server's thread must see the in-memory database of the test process.
"""
