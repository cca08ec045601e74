"""Slow receivers: a client that stops reading must not make the server buffer without end.

Frames for a socket queue in the server's transport until its client reads them. Under daphne
that transport is Twisted's: once its queue passes its buffer size (the kernel's buffers being
full already), it pauses its registered producer and says so in its `producerPaused` flag,
until the queue drains. A socket whose transport stays paused for CHAT_SLOW_RECEIVER_SECONDS
while its room keeps talking has fallen behind: its consumer closes it with
`service_unavailable` / 1013, and the client recovers with `after=` — slow, never silently
short of messages. Under other servers (uvicorn) the transport is out of reach here and every
socket counts as keeping up.
"""

from __future__ import annotations

import time


class SendBacklog:
    """Since when a socket's transport has had more queued than its buffer size."""

    __slots__ = ("full_since", "transport")  # one per open socket

    def __init__(self, transport) -> None:
        self.transport = transport
        self.full_since: float | None = None

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
    if transport is None or not hasattr(transport, "producerPaused"):
        return None
    return SendBacklog(transport)
