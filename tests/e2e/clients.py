"""A small real WebSocket chat client for end-to-end tests."""

from __future__ import annotations

import asyncio
import json

import websockets

from tests.e2e.conftest import http_json

# Frames about other members' state, which most tests are not about.
AMBIENT_TYPES = frozenset({"presence", "typing", "read"})

# Unbounded: a test client that sends without reading must still close at once; with websockets'
# default (16 frames) its close handshake waits behind the unread ones for close_timeout (10 s).
# Tests of clients that stop reading use raw sockets with max_queue=1 (test_slow_receiver.py).
UNREAD_FRAMES = None


class ChatClient:
    """A chat socket; `ignore` lists frame types it passes over (presence, typing, read)."""

    def __init__(self, ws, ignore=AMBIENT_TYPES) -> None:
        self.ws = ws
        self.ignore = frozenset(ignore)
        self.established: dict | None = None

    @classmethod
    async def connect(cls, server, room_id: str, token: str, ignore=AMBIENT_TYPES) -> ChatClient:
        ws = await websockets.connect(
            f"{server.ws_url}/ws/chat/{room_id}/?token={token}", max_queue=UNREAD_FRAMES
        )
        client = cls(ws, ignore)
        client.established = await client.next_frame()
        assert client.established["type"] == "connection.established", client.established
        return client

    async def next_frame(self, timeout: float = 5.0) -> dict:
        while True:
            frame = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
            if frame.get("type") not in self.ignore:
                return frame

    async def next_message(self, timeout: float = 5.0) -> dict:
        while True:
            frame = await self.next_frame(timeout)
            if frame["type"] == "chat.message":
                return frame
            assert frame["type"] != "error", frame

    async def send_message(self, text: str, client_id: str | None = None) -> None:
        frame = {"type": "chat.message", "message": text}
        if client_id:
            frame["client_id"] = client_id
        await self.ws.send(json.dumps(frame))

    @classmethod
    async def refused(cls, server, room_id: str, token: str) -> tuple[dict | None, int | None]:
        """A handshake the server refuses: its error frame and close code."""
        ws = await websockets.connect(f"{server.ws_url}/ws/chat/{room_id}/?token={token}")
        return await cls(ws, AMBIENT_TYPES).closed_with()

    async def sync(self, after: int) -> dict:
        await self.ws.send(json.dumps({"type": "chat.sync", "after": after}))
        while True:
            frame = await self.next_frame()
            if frame["type"] == "chat.history":
                return frame

    async def closed_with(self, timeout: float = 10.0) -> tuple[dict | None, int | None]:
        """Read until the server closes: the last error frame and the close code."""
        error = None
        try:
            while True:
                frame = await self.next_frame(timeout)
                if frame["type"] == "error":
                    error = frame
        except websockets.ConnectionClosed as closed:
            return error, closed.rcvd.code if closed.rcvd else None

    async def close(self) -> None:
        await self.ws.close()


def history_after(server, token: str, room_id: str, after: int) -> list[dict]:
    """Every message after `after`, following `has_more` (what a reconnecting client does)."""
    messages = []
    while True:
        page = http_json(
            f"{server.http_url}/api/chat/rooms/{room_id}/messages/?after={after}&limit=200",
            token=token,
        )
        messages += page["results"]
        if not page["has_more"]:
            return messages
        after = page["results"][-1]["id"]
