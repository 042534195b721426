"""The ASGI side of the server: message types, the HTTP and WebSocket cycles as state machines
(what an application may send when, and what it receives), lifespan, and the check that an
application has ASGI's shape. No sockets here: the connections drive these."""
