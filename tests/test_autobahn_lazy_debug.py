"""chat.adapters.autobahn_lazy_debug: no debug text built per frame, the same when logged."""

import pytest
from autobahn import util
from daphne.ws_protocol import WebSocketFactory
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.logger import formatEvent, globalLogPublisher

from chat.adapters.autobahn_lazy_debug import defer_autobahn_debug_formatting

# An upgrade request whose headers have not all arrived: autobahn reads it and waits.
PARTIAL_HANDSHAKE = b"GET /ws/chat/teste/ HTTP/1.1\r\nHost: localhost\r\n"


@pytest.fixture
def daphne_socket():
    defer_autobahn_debug_formatting()
    factory = WebSocketFactory(server_class=None)
    socket = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5000))
    socket.makeConnection(StringTransport())
    return socket


@pytest.fixture
def highlighted(monkeypatch):
    """Every text autobahn colours for a log line."""
    calls = []
    original = util.hl

    def recording_hl(text, *args, **kwargs):
        calls.append(text)
        return original(text, *args, **kwargs)

    monkeypatch.setattr(util, "hl", recording_hl)
    return calls


@pytest.fixture
def debug_log_lines(daphne_socket):
    """The socket's debug logging switched on; yields the formatted lines it logs."""
    lines = []
    observer = lambda event: lines.append(formatEvent(event))  # noqa: E731
    logger = daphne_socket.log
    level = logger._log_level
    logger.set_log_level("debug")
    globalLogPublisher.addObserver(observer)
    yield lines
    globalLogPublisher.removeObserver(observer)
    logger.set_log_level(level)


def test_frames_sent_and_received_build_no_debug_text(daphne_socket, highlighted):
    daphne_socket.dataReceived(PARTIAL_HANDSHAKE)
    for _ in range(3):
        daphne_socket.sendData(b"frame")

    assert daphne_socket.transport.value() == b"frame" * 3
    assert highlighted == [], "debug text was coloured although debug logging is off"


def test_a_logged_debug_line_reads_as_autobahns_own(daphne_socket, debug_log_lines):
    daphne_socket.sendData(b"frame")

    method, peer = util.hltype(daphne_socket.sendData), util.hlval(daphne_socket.peer)
    # hlval colours the length too when click is installed (schemathesis brings it).
    expected = f"{method} sent {util.hlval(5)} bytes for peer {peer}"
    assert expected in debug_log_lines
