"""Let daphne send the protocol-level close codes the chat protocol uses (1001, 1003, 1009...),
and give clients time to read the close (with the error frame before it).

Daphne closes sockets through autobahn's ``sendClose``, which only accepts 1000 and
3000-4999; any other code raises inside daphne and the client sees 1011 instead of, say,
1009 ``frame_too_big``. RFC 6455 (section 7.4.1) and the IANA registry let an endpoint send
these codes, and autobahn's lower-level ``sendCloseFrame`` sends them fine, so daphne's
``serverClose`` is pointed at it for exactly these codes. tests/e2e checks the codes a real
client receives, so a daphne upgrade that changes this is caught.
"""

from __future__ import annotations

# RFC 6455 codes an endpoint may put in a close frame besides 1000.
CLOSE_HANDSHAKE_SECONDS = 10.0
PROTOCOL_CLOSE_CODES = frozenset({1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013})


def allow_protocol_close_codes() -> None:
    try:
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:  # another ASGI server (uvicorn) sends any valid code itself
        return
    if getattr(WebSocketProtocol, "_chat_close_codes_patched", False):
        return
    original_server_close = WebSocketProtocol.serverClose

    def server_close(self, code=None):
        # autobahn drops the TCP connection if the client has not answered our close within
        # closeHandshakeTimeout (1 s by default); a client still reading a backlog would lose
        # the error frame that says why. Give it longer, still bounded.
        self.closeHandshakeTimeout = max(self.closeHandshakeTimeout or 0, CLOSE_HANDSHAKE_SECONDS)
        if code in PROTOCOL_CLOSE_CODES:
            self.sendCloseFrame(code=code, isReply=False)
        else:
            original_server_close(self, code=code)

    WebSocketProtocol.serverClose = server_close
    WebSocketProtocol._chat_close_codes_patched = True
