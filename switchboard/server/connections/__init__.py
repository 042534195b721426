"""The asyncio protocols, one per connection: HTTP/1.1 (``http11``), WebSocket
(``websocket``), HTTP/2 (``h2/``), and what they share: flow control, lingering close,
``http.response.pathsend`` files, transport addresses."""
