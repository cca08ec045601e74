"""Helpers of the security suite: what a refused or failed client sees, and what it left behind.

Every test of the suite checks three things: the exact error code and close code the client got,
that nothing was stored, and that no other member of the room received anything.
"""

from __future__ import annotations

import asyncio
import json
import re

from channels.testing import WebsocketCommunicator

from chat.domain.models import Message
from chat.protocol import FrameError, Rejection

FRAME_ERROR_CODES = frozenset(code.value for code in FrameError)
REJECTION_CODES = frozenset(code.value for code in Rejection)
# Frames about who is online, sent when members join or leave, whatever the test does.
AMBIENT_TYPES = frozenset({"presence"})
# What a leaked exception looks like on the wire: a traceback, a Python repr, a module path.
LEAK_PATTERN = re.compile(
    r"Traceback|File \"|line \d+, in |object at 0x|<class |Error\(|Exception\(|site-packages"
)


async def stored_count() -> int:
    return await Message.objects.acount()


async def send_text(communicator: WebsocketCommunicator, text: str) -> None:
    """Send a text frame as is (``send_to`` refuses the empty string)."""
    await communicator.send_input({"type": "websocket.receive", "text": text})


async def expect_rejection(
    communicator: WebsocketCommunicator, code: str, close_code: int, *, hang_up_after: bool = True
) -> dict:
    """One error frame with `code`, then a close with `close_code`; the app then ends cleanly."""
    first = await communicator.receive_output(timeout=3)
    assert first["type"] == "websocket.send", first
    frame = json.loads(first["text"])
    assert (frame.get("type"), frame.get("code")) == ("error", code), frame
    assert_no_leak(first["text"])
    closed = await communicator.receive_output(timeout=3)
    assert closed == {"type": "websocket.close", "code": close_code}
    if hang_up_after:
        await hang_up(communicator, close_code)
    return frame


async def hang_up(communicator: WebsocketCommunicator, code: int = 1000) -> None:
    """What a real server does after a close: tell the app the socket is gone; re-raise crashes."""
    if not communicator.future.done():
        await communicator.send_input({"type": "websocket.disconnect", "code": code})
    await communicator.wait(timeout=3)


async def settle(*communicators: WebsocketCommunicator) -> None:
    """Let join announcements (presence) arrive and drop them; anything else is a failure."""

    async def drain(communicator: WebsocketCommunicator) -> None:
        while not await communicator.receive_nothing(timeout=0.1):
            output = await communicator.receive_output()
            assert json.loads(output["text"])["type"] in AMBIENT_TYPES, output

    await asyncio.gather(*(drain(communicator) for communicator in communicators))


async def assert_silent(*communicators: WebsocketCommunicator) -> None:
    """None of these sockets received anything (no broadcast, no history), watched together."""
    quiet = await asyncio.gather(
        *(communicator.receive_nothing(timeout=0.15) for communicator in communicators)
    )
    for communicator, silent in zip(communicators, quiet, strict=True):
        assert silent, await communicator.receive_output()


def assert_no_leak(text: str) -> None:
    assert not LEAK_PATTERN.search(text), f"server internals leaked to the client: {text[:300]}"
