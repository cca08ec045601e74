"""Keep an idle daphne WebSocket small: its protocol options live on the class, not on each socket.

On every new connection autobahn copies each of its ~30 protocol options (timeouts, size
limits, ping settings...) from the factory onto the protocol instance, so that a connection
could be configured apart from the others. daphne configures only its one factory, so every
connection's options are the factory's; the copies only grow each socket's instance dict
(about 2 KB per idle socket, measured in docs/performance.md). autobahn copies only the
options an instance does not already have, so they are set once on daphne's protocol class
instead, from the factory of the first connection (daphne sets the factory's options after
loading the application). Should a second factory ever appear, its sockets get their own
copies, as before. tests/test_daphne_shared_options.py checks the options a socket sees.
"""

from __future__ import annotations


def share_protocol_options() -> None:
    try:
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:  # another ASGI server
        return
    if getattr(WebSocketProtocol, "_chat_options_shared", False):
        return
    original_connection_made = WebSocketProtocol._connectionMade

    def connection_made(self):
        cls = type(self)
        shared_from = cls.__dict__.get("_chat_options_factory")
        if shared_from is None:
            _set_options(cls, self.factory, self.CONFIG_ATTRS)
            cls._chat_options_factory = self.factory
        elif shared_from is not self.factory:
            _set_options(self, self.factory, self.CONFIG_ATTRS)
        original_connection_made(self)

    WebSocketProtocol._connectionMade = connection_made
    WebSocketProtocol._chat_options_shared = True


def _set_options(target, factory, names) -> None:
    for name in names:
        value = getattr(factory, name)
        # On a class, a function would become a method of each socket: keep it as it is.
        if isinstance(target, type) and callable(value):
            value = staticmethod(value)
        setattr(target, name, value)
