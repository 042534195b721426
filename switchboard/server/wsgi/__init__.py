"""WSGI applications on the server: the adapter (``adapter``) and the thread pool that runs
their requests (``thread_pool``)."""

from switchboard.server.wsgi.adapter import WSGIAdapter

__all__ = ["WSGIAdapter"]
