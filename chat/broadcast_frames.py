"""A broadcast frame is encoded and framed once per message, not once per receiving socket.

Every local socket of a room gets the same text for a broadcast. Through ASGI each of them
costs Channels' `send`, daphne's reply routing, a UTF-8 encode and autobahn's framing of the
same bytes again: most of the server's CPU per delivery (docs/performance.md). Under daphne a
socket's autobahn protocol is reachable (chat.backpressure.daphne_protocol), and autobahn
frames a message once for many sockets with `PreparedMessage`, its broadcast API. So a
broadcast's frame is built once and its bytes are written to each open socket's transport, in
the same order as the socket's other frames (daphne's `send` writes synchronously too).

Only the plain case takes this path: an open socket, no compression or fragmentation
negotiated, a frame within the message size limit. Anything else, and every socket under
another server (uvicorn), goes through ASGI as before.
"""

from __future__ import annotations

from autobahn.websocket.protocol import PreparedMessage, WebSocketProtocol

from chat.backpressure import daphne_protocol

# The last frame built (text, payload length, bytes): a broadcast's text is one str object,
# written to socket after socket.
_last_built: tuple[str | None, int, bytes] = (None, 0, b"")


def framed_socket(send) -> WebSocketProtocol | None:
    """The daphne socket behind an ASGI `send`, if broadcast frames can be written to it."""
    protocol = daphne_protocol(send)
    if not isinstance(protocol, WebSocketProtocol):
        return None
    if protocol._perMessageCompress is not None or protocol.autoFragmentSize:
        return None
    if protocol.maskServerFrames:  # our frames are built unmasked, as servers send them
        return None
    return protocol


def write_frame(protocol: WebSocketProtocol, frame: str) -> bool:
    """Write `frame` as a text message; False (nothing written) if ASGI must send it."""
    if protocol.state != WebSocketProtocol.STATE_OPEN:
        return False
    payload_length, wire = _framed(frame)
    limit = protocol.maxMessagePayloadSize
    if 0 < limit < payload_length:
        return False
    protocol.sendData(wire)
    return True


def _framed(text: str) -> tuple[int, bytes]:
    """The payload's length and the whole frame's bytes."""
    global _last_built
    built_for, payload_length, wire = _last_built
    if text is not built_for:
        payload = text.encode()
        # A server's text frame: not binary, not masked, never compressed.
        payload_length = len(payload)
        wire = PreparedMessage(payload, False, False, True).payloadHybi
        _last_built = (text, payload_length, wire)
    return payload_length, wire
