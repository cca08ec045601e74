"""chat.adapters.daphne_shared_options: sockets see the factory's options without copies of them."""

import pytest
from daphne.ws_protocol import WebSocketFactory
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from chat.adapters.daphne_shared_options import share_protocol_options

OPTION_NAMES = ("maxMessagePayloadSize", "autoPingTimeout", "perMessageCompressionAccept")


def daphne_factory(**options) -> WebSocketFactory:
    factory = WebSocketFactory(server_class=None)
    factory.setProtocolOptions(**options)
    return factory


def open_socket(factory: WebSocketFactory):
    protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5000))
    protocol.makeConnection(StringTransport())
    return protocol


@pytest.fixture
def isolated_protocol_class(monkeypatch):
    """A fresh subclass of daphne's protocol, so tests never touch the server's own class."""
    from daphne import ws_protocol

    class Protocol(ws_protocol.WebSocketProtocol):
        pass

    monkeypatch.setattr(ws_protocol, "WebSocketProtocol", Protocol)
    monkeypatch.setattr(WebSocketFactory, "protocol", Protocol)
    share_protocol_options()
    return Protocol


def test_sockets_see_the_factorys_options_without_copying_them(isolated_protocol_class):
    factory = daphne_factory(maxMessagePayloadSize=1234, autoPingTimeout=7)

    sockets = [open_socket(factory) for _ in range(3)]

    for socket in sockets:
        assert socket.maxMessagePayloadSize == 1234
        assert socket.autoPingTimeout == 7
        # a function option is the factory's own, not a method bound to the socket
        assert socket.perMessageCompressionAccept is factory.perMessageCompressionAccept
        assert not set(OPTION_NAMES) & set(vars(socket)), "no per-socket copies"


def test_autobahn_has_no_options_left_to_copy_or_print(isolated_protocol_class, monkeypatch):
    from autobahn.websocket import protocol as autobahn_protocol

    printed = []
    monkeypatch.setattr(autobahn_protocol, "pformat", lambda value: printed.append(value) or "")
    factory = daphne_factory(maxMessagePayloadSize=1234)

    open_socket(factory)
    open_socket(factory)

    assert printed == [[], []], "the options were copied and pretty-printed per socket"


def test_a_second_factorys_sockets_get_their_own_options(isolated_protocol_class):
    first = daphne_factory(maxMessagePayloadSize=1234)
    second = daphne_factory(maxMessagePayloadSize=99)

    one, other = open_socket(first), open_socket(second)

    assert one.maxMessagePayloadSize == 1234
    assert other.maxMessagePayloadSize == 99
