"""HTTP/2 for the server (RFC 9113) on the ``h2`` library, with WebSockets over it (RFC 8441).

``protocol`` drives one connection; ``stream`` is one request's ASGI cycle; ``websocket`` runs
the WebSocket protocol on a stream; ``limits`` holds the budgets and flood guards, without
I/O (the header fields are ``wire/h2_fields``);
``handover`` is where an HTTP/1.1 connection turns into an HTTP/2 one.
"""
