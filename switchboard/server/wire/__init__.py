"""Wire formats without I/O: bytes in, bytes or parsed values out. HTTP/1.1 framing, WebSocket
frames, HTTP/2 header fields, and the rewriting of proxy headers into the ASGI scope."""
