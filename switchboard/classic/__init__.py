"""The Channels 1 API: function consumers over named channels, run by workers.

A Channels 1 project runs on Switchboard once ``channels`` becomes ``switchboard`` in its
imports and ``INSTALLED_APPS``. The names it imports live at their Channels 1 paths
(``switchboard.Channel``, ``switchboard.Group``, ``switchboard.routing.route``,
``switchboard.sessions.channel_session``, ``switchboard.generic.websockets``,
``switchboard.binding.websockets``, ``switchboard.asgi.get_channel_layer``...), which re-export
what this package implements:

- :mod:`~switchboard.classic.message`: ``Message``, and the sends a consumer holds until it
  returns.
- :mod:`~switchboard.classic.channel`: ``Channel`` and ``Group``.
- :mod:`~switchboard.classic.routing`: ``route``, ``route_class``, ``include`` and the router
  named by a ``CHANNEL_LAYERS`` entry's ``ROUTING``.
- :mod:`~switchboard.classic.worker`: the worker running consumers for routed channels
  (``manage.py runworker``).
- :mod:`~switchboard.classic.interface`: the interface server putting every HTTP request and
  WebSocket event on the layer (``switchboard serve myproject.asgi:channel_layer``).
- :mod:`~switchboard.classic.sessions`, :mod:`~switchboard.classic.auth`: the session, user and
  ordering decorators; :mod:`~switchboard.classic.security`: ``allowed_hosts_only``;
  :mod:`~switchboard.classic.generic`: class-based consumers;
  :mod:`~switchboard.classic.demultiplex`: the demultiplexer;
  :mod:`~switchboard.classic.binding`: ``WebsocketBinding``.
- :mod:`~switchboard.classic.held`: the sends a consumer holds until it returns;
  :mod:`~switchboard.classic.http`: ``http.request`` answered by Django's views;
  :mod:`~switchboard.classic.embedded`: ``runserver``'s interface server with its workers.
"""
