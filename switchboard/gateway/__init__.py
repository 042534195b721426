"""Gateway mode: sockets held by gateway processes, consumers run by worker processes.

``switchboard serve mysite.asgi:application --gateway`` holds the WebSocket connections (and
serves HTTP as usual); ``python manage.py runworker --gateway`` runs their consumers; the
channel layer joins them (IPC on one machine, Redis across machines), so a deploy or a crashed
worker closes no socket: its connections move to another worker. See ``docs/topics/gateway.md``.

- :mod:`~switchboard.gateway.protocol`: the protocol core, sans I/O (messages, scope packing,
  sequences, the connection state table, the worker directory).
- :mod:`~switchboard.gateway.delivery`: sending over a layer that may be away for a while.
- The gateway's side: :mod:`~switchboard.gateway.relay` (its ASGI application),
  :mod:`~switchboard.gateway.hub` (its channel, workers and connections),
  :mod:`~switchboard.gateway.relayed` (one socket), :mod:`~switchboard.gateway.cli` (the
  ``--gateway`` options of ``switchboard serve``).
- The worker's side: :mod:`~switchboard.gateway.worker` (the process) and
  :mod:`~switchboard.gateway.served` (one connection's consumer).
"""
