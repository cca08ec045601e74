"""Slow receivers: a client that stops reading must not make the server buffer without end.

Frames for a socket queue in the server's transport until its client reads them. Under daphne
that transport is Twisted's: once its queue passes its buffer size (the kernel's buffers being
full already), it pauses its registered producer and says so in its `producerPaused` flag,
until the queue drains. A socket whose transport stays paused for CHAT_SLOW_RECEIVER_SECONDS
while its room keeps talking has fallen behind: its consumer closes it with
`service_unavailable` / 1013, and the client recovers with `after=` — slow, never silently
short of messages.

Whatever is queued, a socket's bytes also have a budget: CHAT_SOCKET_BUFFER_BYTES. Before each
frame the consumer sends (broadcasts, its own answers such as sync pages, error frames), it
reads how much the transport still holds for that socket; past the budget the socket is closed
the same way. That covers a client that asks and asks and never reads its answers.

This module is the one place that reads another library's private state (Twisted's transport
buffer); it was written for daphne 4.2.3, autobahn 26.10.2 and Twisted 26.10.0, pinned in
requirements.txt, and `tests/test_backpressure.py` fails if those attributes go away. Under
other servers (uvicorn), or without them, the transport is out of reach here and every socket
counts as keeping up: "unknown, keep going".
"""

from __future__ import annotations

import time

from django.conf import settings

OVER_BUFFER_BUDGET = "over CHAT_SOCKET_BUFFER_BYTES"  # how `behind` ends when that is why
# The attributes of twisted.internet.abstract.FileDescriptor (a TCP transport) read here.
TRANSPORT_BUFFER_ATTRIBUTES = ("producerPaused", "dataBuffer", "offset", "_tempDataLen")


class SendBacklog:
    """What a socket's transport holds: how many bytes, and since when more than its buffer size."""

    __slots__ = ("budget_bytes", "full_since", "slow_seconds", "transport")  # one per socket

    def __init__(self, transport, *, budget_bytes: int, slow_seconds: float) -> None:
        self.transport = transport
        self.full_since: float | None = None
        # Read from settings once per socket: a settings lookup costs more than this whole check.
        self.budget_bytes = budget_bytes
        self.slow_seconds = slow_seconds

    def behind(self, frame_length: int) -> str | None:
        """Why this socket cannot take a frame of `frame_length` more, or None if it can."""
        queued = self.queued_bytes()
        if queued + frame_length > self.budget_bytes:
            return f"{queued} bytes queued: {OVER_BUFFER_BUDGET}"
        if self.seconds_behind() > self.slow_seconds:
            return "send buffer full for CHAT_SLOW_RECEIVER_SECONDS"
        return None

    def queued_bytes(self) -> int:
        """Bytes written to the transport that the kernel has not taken yet.

        FileDescriptor keeps them in two places: `dataBuffer` from `offset` on (being written)
        and `_tempDataBuffer`, `_tempDataLen` bytes long (written since).
        """
        transport = self.transport
        return len(transport.dataBuffer) - transport.offset + transport._tempDataLen

    def seconds_behind(self) -> float:
        if not getattr(self.transport, "producerPaused", False):
            self.full_since = None
            return 0.0
        now = time.monotonic()
        if self.full_since is None:
            self.full_since = now
        return now - self.full_since


def daphne_protocol(send):
    """The daphne protocol (socket) behind an ASGI `send`, or None under another server.

    daphne's `send` is `partial(server.handle_reply, protocol)`.
    """
    return next(iter(getattr(send, "args", ())), None)


def watch_send_backlog(send) -> SendBacklog | None:
    """The SendBacklog of the socket behind an ASGI `send`, where the server exposes one.

    Under daphne the protocol's transport is a Twisted TCP transport, whose HTTP channel stays
    registered as its streaming producer after the WebSocket upgrade (so `producerPaused` is
    kept up to date).
    """
    transport = getattr(daphne_protocol(send), "transport", None)
    if transport is None or not all(
        hasattr(transport, name) for name in TRANSPORT_BUFFER_ATTRIBUTES
    ):
        return None
    return SendBacklog(
        transport,
        budget_bytes=settings.CHAT_SOCKET_BUFFER_BYTES,
        slow_seconds=settings.CHAT_SLOW_RECEIVER_SECONDS,
    )
