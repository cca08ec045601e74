"""Connect to the real ASGI application (auth middleware, routing, consumers) in-process."""

from __future__ import annotations

import json

from channels.testing import WebsocketCommunicator

from crm_backend.asgi import application

# Frames about other members' state, which most tests are not about.
AMBIENT_TYPES = frozenset({"presence", "typing", "read"})


class ChatCommunicator(WebsocketCommunicator):
    """A communicator that, unless told otherwise, passes over presence/typing/read frames."""

    ignore: frozenset = AMBIENT_TYPES

    def _ambient(self, output: dict) -> bool:
        if output.get("type") != "websocket.send" or "text" not in output:
            return False
        return json.loads(output["text"]).get("type") in self.ignore

    async def receive_output(self, timeout=1):
        pending = getattr(self, "_pending", None)
        if pending:
            return pending.pop(0)
        while True:
            output = await super().receive_output(timeout)
            if not self._ambient(output):
                return output

    async def receive_nothing(self, timeout=0.1, interval=0.01):
        if getattr(self, "_pending", None):
            return False
        while not await super().receive_nothing(timeout, interval):
            output = await super().receive_output(timeout)
            if not self._ambient(output):
                self._pending = [output]  # the test reads it next
                return False
        return True


async def open_socket(
    path: str,
    *,
    token: str | None = None,
    origin: str | None = None,
    bearer: str | None = None,
    host: str | None = None,
    ignore=AMBIENT_TYPES,
) -> ChatCommunicator:
    if token is not None:
        path = f"{path}{'&' if '?' in path else '?'}token={token}"
    headers = []
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    if host is not None:
        headers.append((b"host", host.encode()))
    if bearer is not None:
        headers.append((b"authorization", f"Bearer {bearer}".encode()))
    communicator = ChatCommunicator(application, path, headers=headers)
    communicator.ignore = frozenset(ignore)
    connected, _ = await communicator.connect()
    assert connected, "the server must accept the handshake (rejections come as frames)"
    return communicator


async def assert_rejected(communicator: WebsocketCommunicator, code: str, close_code: int) -> dict:
    """The client gets one error frame saying why, then the close code."""
    frame = await communicator.receive_json_from()
    assert frame["type"] == "error"
    assert frame["code"] == code
    assert frame["detail"]
    closed = await communicator.receive_output()
    assert closed == {"type": "websocket.close", "code": close_code}
    await communicator.disconnect(code=close_code)  # the client side answers the close
    return frame


async def joined(path: str, **kwargs) -> WebsocketCommunicator:
    """Open a socket and consume its connection.established frame."""
    communicator = await open_socket(path, **kwargs)
    established = await communicator.receive_json_from()
    assert established["type"] == "connection.established", established
    return communicator


def room_path(room) -> str:
    return f"/ws/chat/{room.pk}/"
