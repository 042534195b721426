"""Gateway mode's protocol core: what a gateway and its workers say to each other, sans I/O.

In gateway mode a gateway process holds the WebSocket sockets, worker processes run the
consumers, and the channel layer joins them, so a deploy or a crashed worker closes no socket.
This package is its first part: the I/O around it (``serve --gateway``, ``runworker
--gateway``) comes next, and until then nothing else imports it. Everything here is
plain code over plain data, with no sockets, tasks or timers, so each rule is tested on its own
and the parts that do the I/O stay thin:

- :mod:`~switchboard.gateway.messages`: the layer messages between gateways and workers, built
  and checked as plain dicts.
- :mod:`~switchboard.gateway.scope`: an ASGI WebSocket scope packed to travel over the layer
  and unpacked on the worker, with the ``scope["switchboard"]["resumed"]`` flag.
- :mod:`~switchboard.gateway.sequence`: order, duplicates and bounded buffers for the events
  of one connection (an in-order receiver, a resend buffer).
- :mod:`~switchboard.gateway.connection_states`: the gateway's state of one relayed
  connection, as a table.

The package imports nothing of Switchboard but :mod:`switchboard.layers` and
:mod:`switchboard.exceptions`, and no Django.
"""
