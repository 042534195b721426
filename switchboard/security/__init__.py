"""Security helpers for ASGI applications (origin checks for WebSockets)."""
