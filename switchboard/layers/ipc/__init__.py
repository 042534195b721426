"""The IPC channel layer: several processes on one host, no server (see layer.py)."""

from switchboard.layers.ipc.layer import IPCChannelLayer

__all__ = ["IPCChannelLayer"]
