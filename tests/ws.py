"""Connect to the real ASGI application (auth middleware, routing, consumers) in-process."""

from __future__ import annotations

from channels.testing import WebsocketCommunicator

from crm_backend.asgi import application


async def open_socket(
    path: str, *, token: str | None = None, origin: str | None = None, bearer: str | None = None
) -> WebsocketCommunicator:
    if token is not None:
        path = f"{path}{'&' if '?' in path else '?'}token={token}"
    headers = []
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    if bearer is not None:
        headers.append((b"authorization", f"Bearer {bearer}".encode()))
    communicator = WebsocketCommunicator(application, path, headers=headers)
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
