"""Generic consumers for WebSocket and HTTP connections."""
