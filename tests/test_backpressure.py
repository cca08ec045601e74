"""chat.adapters.backpressure reads Twisted's transport buffer: what, and when it cannot."""

from __future__ import annotations

from functools import partial

from twisted.internet import tcp
from twisted.internet.abstract import FileDescriptor

from chat.adapters.backpressure import SendBacklog, watch_send_backlog


class StubReactor:
    """Just what a FileDescriptor asks of its reactor while it writes."""

    def addWriter(self, descriptor) -> None:
        pass

    def removeWriter(self, descriptor) -> None:
        pass


class Transport(FileDescriptor):
    """Twisted's own buffering (write, doWrite) over a kernel that takes `kernel_room` bytes."""

    def __init__(self) -> None:
        super().__init__(reactor=StubReactor())
        self.connected = 1
        self.kernel_room = 0

    def writeSomeData(self, data) -> int:
        taken = min(len(data), self.kernel_room)
        self.kernel_room -= taken
        return taken


class DaphneProtocol:
    def __init__(self, transport) -> None:
        self.transport = transport


def backlog_of(transport):
    """As under daphne, whose ASGI `send` is `partial(server.handle_reply, protocol)`."""
    return watch_send_backlog(partial(lambda protocol, message: None, DaphneProtocol(transport)))


def test_queued_bytes_are_what_twisted_holds_that_the_kernel_did_not_take():
    assert issubclass(tcp.Server, FileDescriptor), "daphne's sockets buffer like this"
    transport = Transport()
    backlog = backlog_of(transport)
    assert backlog.queued_bytes() == 0

    transport.write(b"a" * 100)
    assert backlog.queued_bytes() == 100  # still in _tempDataBuffer
    transport.kernel_room = 30
    transport.doWrite()
    assert backlog.queued_bytes() == 70  # dataBuffer from offset 30
    transport.write(b"b" * 50)
    assert backlog.queued_bytes() == 120  # both buffers
    transport.kernel_room = 10**6
    transport.doWrite()
    transport.doWrite()
    assert backlog.queued_bytes() == 0


def test_a_frame_that_would_take_a_socket_past_its_buffer_budget_is_refused():
    transport = Transport()
    backlog = SendBacklog(transport, budget_bytes=100, slow_seconds=10)
    transport.write(b"a" * 80)
    assert backlog.behind(20) is None
    assert backlog.behind(21) == "80 bytes queued: over CHAT_SOCKET_BUFFER_BYTES"


def test_other_servers_and_other_transports_are_unknown_and_not_watched():
    async def uvicorn_like_send(message):
        pass

    assert watch_send_backlog(uvicorn_like_send) is None
    assert backlog_of(None) is None
    assert backlog_of(object()) is None, "a transport without Twisted's buffer attributes"
