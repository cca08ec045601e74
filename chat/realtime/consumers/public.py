"""The public `teste` room and the catch-all for unknown paths."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs

from django.conf import settings

from chat import protocol
from chat.protocol import CHAT_MESSAGE, CHAT_SYNC, PING, ClientFrame, Rejection
from chat.realtime.consumers.base import BaseChatConsumer, client_ip
from chat.realtime.delivery import PUBLIC_ROOM_GROUP
from chat.realtime.origin import origin_allowed
from chat.realtime.ratelimit import BucketRegistry, registry

ANONYMOUS_NAME = "anônimo"


class TestChatConsumer(BaseChatConsumer):
    """The public echo-broadcast room `teste`: no token, nothing stored."""

    async def connect(self):
        if not settings.CHAT_PUBLIC_TEST_ROOM:
            return await self.reject(Rejection.ROOM_NOT_FOUND, "the public test room is off")
        if not origin_allowed(self.scope, public_room=True):
            return await self.reject(Rejection.ORIGIN_NOT_ALLOWED)
        self.display_name = _query_display_name(self.scope) or ANONYMOUS_NAME
        self.shared_rate_key = client_ip(self.scope)
        if not await self.join_group(PUBLIC_ROOM_GROUP):
            return
        await self.accept()
        await self.send(
            text_data=protocol.connection_established_frame(
                room={"id": "teste", "name": "teste", "type": "public"},
                user=protocol.user_payload(None, self.display_name),
            )
        )

    async def handle_chat_message(self, frame: ClientFrame) -> None:
        rendered = protocol.dumps(
            {
                "type": CHAT_MESSAGE,
                "id": None,
                "room": "teste",
                "message": frame.message,
                "user": protocol.user_payload(None, frame.username or self.display_name),
                "created_at": protocol.timestamp(datetime.now(UTC)),
                "client_id": frame.client_id,
            }
        )
        if not await self.broadcast(rendered):
            await self.reject(Rejection.SERVICE_UNAVAILABLE)

    async def handle_sync(self, frame: ClientFrame) -> None:
        await self.send(text_data=protocol.history_frame([], has_more=False))

    frame_handlers = {
        CHAT_MESSAGE: handle_chat_message,
        PING: BaseChatConsumer.handle_ping,
        CHAT_SYNC: handle_sync,
    }

    def shared_rate_limit(self) -> BucketRegistry:
        return registry(
            "public-ip",
            rate=settings.CHAT_PUBLIC_IP_RATE_LIMIT_PER_SECOND,
            burst=settings.CHAT_PUBLIC_IP_RATE_LIMIT_BURST,
        )


class NotFoundConsumer(BaseChatConsumer):
    """Any other path under /ws/: a clear 4404 instead of a routing error."""

    async def connect(self):
        await self.reject(Rejection.ROOM_NOT_FOUND, "no chat endpoint at this path")


def _query_display_name(scope: dict) -> str | None:
    names = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("username")
    if names and names[0].strip():
        return names[0].strip()[:50]
    return None
