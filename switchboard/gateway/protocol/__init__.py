"""Gateway mode's protocol core, sans I/O: plain code over plain data, with no sockets, tasks
or timers (time is passed in), so each rule is tested on its own and the I/O around it stays
thin. It imports nothing of Switchboard but :mod:`switchboard.layers` and
:mod:`switchboard.exceptions` (``tests/gateway/test_sans_io.py``).

- :mod:`~switchboard.gateway.protocol.messages`: the layer messages between gateways and
  workers, built and checked as plain dicts.
- :mod:`~switchboard.gateway.protocol.scope`: an ASGI WebSocket scope packed to travel over
  the layer and unpacked on the worker, with the ``scope["switchboard"]["resumed"]`` flag.
- :mod:`~switchboard.gateway.protocol.sequence`: order, duplicates and bounded buffers for the
  events of one connection (an in-order receiver, a resend buffer).
- :mod:`~switchboard.gateway.protocol.connection_states`: the gateway's state of one relayed
  connection, as a table.
- :mod:`~switchboard.gateway.protocol.directory`: the workers a gateway knows, and which one
  takes the next connection.
"""
