"""A broadcast frame is encoded and framed once per message, not once per receiving socket.

Every local socket of a room gets the same text for a broadcast. Through ASGI each of them
costs Channels' `send`, daphne's reply routing, a UTF-8 encode and autobahn's framing of the
same bytes again: most of the server's CPU per delivery (docs/performance.md). Under daphne a
socket's autobahn protocol is reachable (backpressure.daphne_protocol), and autobahn has a
public API for exactly this: `factory.prepareMessage` frames a message once, and each socket's
`sendPreparedMessage` writes it (compressing it itself where compression was negotiated), in
the same order as the socket's other frames (daphne's `send` writes synchronously too).

Only the plain case takes this path: an open socket, no fragmentation, unmasked server frames,
a frame within the message size limit. Anything else, and every socket under another server
(uvicorn), goes through ASGI as before.
"""

from __future__ import annotations

from autobahn.websocket.protocol import PreparedMessage, WebSocketProtocol

from chat.adapters.backpressure import daphne_protocol

# The last message prepared (text, factory, message): a broadcast's text is one str object,
# written to socket after socket.
_last_prepared: tuple[str | None, object, PreparedMessage | None] = (None, None, None)


def framed_socket(send) -> WebSocketProtocol | None:
    """The daphne socket behind an ASGI `send`, if broadcast frames can be written to it."""
    protocol = daphne_protocol(send)
    if not isinstance(protocol, WebSocketProtocol):
        return None
    if protocol.autoFragmentSize or protocol.maskServerFrames:
        return None  # a prepared message is one unmasked frame
    return protocol


def write_frame(protocol: WebSocketProtocol, frame: str) -> bool:
    """Write `frame` as a text message; False (nothing written) if ASGI must send it."""
    if protocol.state != WebSocketProtocol.STATE_OPEN:
        return False
    prepared = _prepared(protocol.factory, frame)
    limit = protocol.maxMessagePayloadSize
    if 0 < limit < len(prepared.payload):
        return False
    protocol.sendPreparedMessage(prepared)
    return True


def _prepared(factory, text: str) -> PreparedMessage:
    global _last_prepared
    prepared_for, prepared_by, prepared = _last_prepared
    if text is not prepared_for or factory is not prepared_by:
        prepared = factory.prepareMessage(text.encode())
        _last_prepared = (text, factory, prepared)
    return prepared
