"""Objects handed to ``switchboard serve`` by the CLI tests: the common mistakes, and a good one."""

from switchboard.generic.websocket import AsyncWebsocketConsumer


def wsgi_function(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"wsgi"]


class WsgiCallable:
    """Shaped like Django's WSGIHandler or a Flask app: ``__call__(environ, start_response)``."""

    def __call__(self, environ, start_response):
        return wsgi_function(environ, start_response)


wsgi_object = WsgiCallable()


class EchoConsumer(AsyncWebsocketConsumer):
    async def receive(self, text_data=None, bytes_data=None):
        await self.send(text_data=text_data, bytes_data=bytes_data)


not_callable = {"DEBUG": True}  # e.g. a settings dict named by mistake


async def two_arguments(scope, receive):
    """ASGI missing ``send``."""


async def asgi_app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
