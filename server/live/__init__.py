"""The WebSocket edge: live connections, their channels, and presence.

``web/ws.py`` authenticates a socket and hands it to a
:class:`~server.live.connection.Connection`; the process-wide
:class:`~server.live.hub.Hub` ties connections to broker channels, checks
each subscription with ``core``, and recovers from PostgreSQL whatever a
subscriber did not receive live. The decisions about ordering, duplicates
and gaps are made by the plain state machine in ``subscription.py``.
"""
