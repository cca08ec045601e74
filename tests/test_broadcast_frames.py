"""chat.adapters.broadcast_frames: a broadcast written to daphne is autobahn's frame."""

from functools import partial

import pytest
from autobahn.websocket.protocol import WebSocketProtocol
from daphne.server import Server
from daphne.ws_protocol import WebSocketFactory
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from chat.adapters.broadcast_frames import framed_socket, write_frame

TEXTS = [
    '{"type": "presence", "status": "online"}',  # short: length in the frame's second byte
    '{"type": "chat.message", "message": "' + "Olá, equipe! " * 40 + '"}',  # 16-bit length
    "ç" * 40_000,  # 64-bit length
]


def daphne_socket(*, open_: bool = True, **options) -> WebSocketProtocol:
    factory = WebSocketFactory(server_class=None)
    factory.setProtocolOptions(**options)
    socket = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5000))
    socket.makeConnection(StringTransport())
    if open_:
        socket.state = WebSocketProtocol.STATE_OPEN  # as after the opening handshake
    socket.transport.clear()
    return socket


def asgi_send(socket) -> partial:
    """What daphne hands the application as `send` for this socket."""
    server = Server.__new__(Server)  # never started: only its bound method is needed
    return partial(server.handle_reply, socket)


@pytest.mark.parametrize("text", TEXTS, ids=["short", "medium", "long"])
def test_the_bytes_written_are_the_frame_autobahn_sends(text):
    through_autobahn, direct = daphne_socket(), daphne_socket()

    through_autobahn.sendMessage(text.encode(), isBinary=False)
    written = write_frame(framed_socket(asgi_send(direct)), text)

    assert written is True
    assert direct.transport.value() == through_autobahn.transport.value()


def test_each_broadcast_gets_its_own_frame():
    socket = daphne_socket()
    first, second = "".join(["a", "b"]), "".join(["a", "c"])

    for text in (first, first, second, first):
        write_frame(socket, text)

    expected = daphne_socket()
    for text in (first, first, second, first):
        expected.sendMessage(text.encode())
    assert socket.transport.value() == expected.transport.value()


def test_a_socket_that_is_not_open_is_left_to_asgi():
    socket = daphne_socket(open_=False)

    assert write_frame(socket, "hello") is False
    assert socket.transport.value() == b""


def test_a_frame_over_the_message_size_limit_is_left_to_asgi():
    socket = daphne_socket(maxMessagePayloadSize=100)

    assert write_frame(socket, "x" * 101) is False
    assert write_frame(socket, "x" * 100) is True  # the limit is the payload's, as autobahn's


def test_only_plain_daphne_sockets_are_written_directly():
    plain = daphne_socket()
    fragmenting = daphne_socket(autoFragmentSize=1024)
    masking = daphne_socket(maskServerFrames=True)
    compressing = daphne_socket()
    compressing._perMessageCompress = object()  # as when permessage-deflate was negotiated

    async def uvicorn_send(message):  # another server: a plain callable
        pass

    assert framed_socket(asgi_send(plain)) is plain
    assert framed_socket(asgi_send(fragmenting)) is None
    assert framed_socket(asgi_send(masking)) is None
    # Compression is sendPreparedMessage's own business: it compresses where negotiated.
    assert framed_socket(asgi_send(compressing)) is compressing
    assert framed_socket(uvicorn_send) is None
