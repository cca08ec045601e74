"""Keep an idle daphne WebSocket small: its protocol options live on the class, not on each socket.

On every new connection autobahn copies each of its ~30 protocol options (timeouts, size
limits, ping settings...) from the factory onto the protocol instance, so that a connection
could be configured apart from the others, and pretty-prints the list for a debug line that
it builds even when debug logging is off. daphne configures only its one factory, so every
connection's options are the factory's; the copies only grow each socket's instance dict
(about 2 KB per idle socket, measured in docs/performance.md) and cost CPU per handshake.

So the options are set once on daphne's protocol class, from the factory of the first
connection (daphne sets the factory's options after loading the application), and the class's
list of options to copy is emptied: autobahn then copies and prints nothing. Should a second
factory ever appear, its sockets get their own copies, as before.
tests/test_daphne_shared_options.py checks the options a socket sees.
"""

from __future__ import annotations


def share_protocol_options() -> None:
    try:
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:  # another ASGI server
        return
    if getattr(WebSocketProtocol, "_chat_options_shared", False):
        return
    option_names = WebSocketProtocol.CONFIG_ATTRS
    original_connection_made = WebSocketProtocol._connectionMade

    def connection_made(self):
        cls = type(self)
        shared_from = cls.__dict__.get("_chat_options_factory")
        if shared_from is None:
            _set_options(cls, self.factory, option_names)
            cls._chat_options_factory = self.factory
            cls.CONFIG_ATTRS = ()  # all on the class now: nothing for autobahn to copy
        elif shared_from is not self.factory:
            _set_options(self, self.factory, option_names)
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
