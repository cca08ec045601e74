"""WebSocket consumers: translate frames to service calls and back. No rules live here.

- base.py: framing every consumer shares (rejections with reasons, limits, parsing)
- room.py: ChatConsumer, a real room (members, storage, edit/delete, read, typing, presence)
- public.py: TestChatConsumer (the public `teste` room) and NotFoundConsumer
"""

from chat.realtime.consumers.public import NotFoundConsumer, TestChatConsumer
from chat.realtime.consumers.room import ChatConsumer

__all__ = ["ChatConsumer", "NotFoundConsumer", "TestChatConsumer"]
