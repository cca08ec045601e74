"""WebSocket consumers: translate frames to service calls and back. No rules live here."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import DatabaseError
from redis.exceptions import RedisError

from chat import events, liveness, protocol
from chat.access import room_for_connection
from chat.ordering import room_sequence
from chat.origin import origin_allowed
from chat.protocol import (
    CHAT_MESSAGE,
    CHAT_SYNC,
    PING,
    ClientFrame,
    CloseCode,
    FrameError,
    ProtocolError,
    Rejection,
)
from chat.ratelimit import BucketRegistry, TokenBucket, registry
from chat.selectors import message_list
from chat.services import message_create

logger = logging.getLogger(__name__)

# What a channel layer raises when its backing service (Redis) is unreachable.
CHANNEL_LAYER_ERRORS = (OSError, RedisError)
ANONYMOUS_NAME = "anônimo"
SYNC_PAGE_SIZE = 200
HANDSHAKE_RATE_LIMITED = "too many failed connection attempts from your address; wait and retry"


class BaseChatConsumer(AsyncWebsocketConsumer):
    """Shared framing: rejections with reasons, size and binary limits, parsing, rate limit."""

    group_name: str | None = None

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        except CHANNEL_LAYER_ERRORS:
            if hasattr(self, "channel_receive"):
                logger.warning("channel layer lost under an open socket: %s", scope["path"])
                return
            # Channels asks the layer for a channel name before the handshake; when Redis is
            # down that fails, and without this the client would get an HTTP 500.
            logger.error("channel layer unavailable; refusing %s with 1013", scope["path"])
            await _refuse_handshake(receive, send, Rejection.SERVICE_UNAVAILABLE)

    async def dispatch(self, message):
        """Any unexpected failure: log it, tell the client `internal_error` (1011), close."""
        try:
            await super().dispatch(message)
        except (StopConsumer, asyncio.CancelledError):
            raise
        except Exception:
            logger.exception(
                "unexpected error handling %s on %s", message["type"], self.scope["path"]
            )
            if message["type"] != "websocket.disconnect":
                await self.reject(Rejection.INTERNAL_ERROR)

    async def accept(self, subprotocol=None, headers=None):
        self.accepted = True
        await super().accept(subprotocol, headers)

    async def websocket_connect(self, message):
        self.closing = False
        self.accepted = False
        self.rate_limit = TokenBucket(
            rate=settings.CHAT_RATE_LIMIT_PER_SECOND, burst=settings.CHAT_RATE_LIMIT_BURST
        )
        self.rate_limit_strikes = 0
        await super().websocket_connect(message)

    async def reject(self, rejection: Rejection, detail: str | None = None):
        """Tell the client why (error frame), close with the matching code, and log it."""
        if self.closing:
            return
        self.closing = True
        detail = detail or rejection.default_detail
        logger.warning(
            "WebSocket rejected: %s (%s) close=%d user=%s path=%s",
            rejection,
            detail,
            rejection.close_code,
            self.log_user(),
            self.scope["path"],
        )
        if not self.accepted:
            await self.accept()
        await self.send(text_data=protocol.error_frame(rejection, detail))
        await self.close(code=int(rejection.close_code))

    async def send_error(self, code: FrameError, detail: str) -> None:
        await self.send(text_data=protocol.error_frame(code, detail))

    def log_user(self) -> str:
        user = self.scope.get("user")
        return user.username if user is not None and user.is_authenticated else "anonymous"

    async def receive(self, text_data=None, bytes_data=None):
        if self.closing:
            return
        if text_data is None:
            return await self.reject(Rejection.BINARY_NOT_SUPPORTED)
        if _utf8_length(text_data) > settings.CHAT_MAX_FRAME_BYTES:
            return await self.reject(
                Rejection.FRAME_TOO_BIG,
                f"frame is larger than {settings.CHAT_MAX_FRAME_BYTES} bytes",
            )
        try:
            frame = protocol.parse_client_frame(
                text_data, max_message_length=settings.CHAT_MAX_MESSAGE_LENGTH
            )
        except ProtocolError as error:
            return await self.send_error(error.code, error.detail)
        if frame.type == PING:
            await self.send(text_data=protocol.pong_frame())
        elif frame.type == CHAT_SYNC:
            await self.handle_sync(frame)
        elif await self.within_rate_limit():
            await self.handle_chat_message(frame)

    def shared_rate_limit(self) -> BucketRegistry | None:
        """A limit shared with other sockets (per user, per IP), keyed by shared_rate_key."""
        return None

    shared_rate_key = None

    async def within_rate_limit(self) -> bool:
        shared = self.shared_rate_limit()
        if self.rate_limit.allow() and (shared is None or shared.allow(self.shared_rate_key)):
            self.rate_limit_strikes = 0
            return True
        self.rate_limit_strikes += 1
        if self.rate_limit_strikes > settings.CHAT_RATE_LIMIT_STRIKES:
            await self.reject(Rejection.RATE_LIMITED)
        else:
            await self.send_error(
                FrameError.RATE_LIMITED,
                f"too many messages; at most {settings.CHAT_RATE_LIMIT_PER_SECOND:g} per second",
            )
        return False

    async def handle_chat_message(self, frame: ClientFrame) -> None:
        raise NotImplementedError

    async def handle_sync(self, frame: ClientFrame) -> None:
        raise NotImplementedError

    async def chat_broadcast(self, event):
        """A frame for every socket of the room, already serialized by the sender."""
        if not self.closing:
            await self.send(text_data=event["frame"])

    async def join_group(self, group_name: str) -> bool:
        try:
            await self.channel_layer.group_add(group_name, self.channel_name)
        except CHANNEL_LAYER_ERRORS:
            logger.exception("channel layer unavailable while joining %s", group_name)
            await self.reject(Rejection.SERVICE_UNAVAILABLE)
            return False
        self.group_name = group_name
        liveness.socket_opened(self)
        return True

    async def broadcast(self, frame: str) -> bool:
        try:
            await self.channel_layer.group_send(self.group_name, events.broadcast_event(frame))
        except CHANNEL_LAYER_ERRORS:
            logger.exception("channel layer unavailable while broadcasting to %s", self.group_name)
            return False
        return True

    async def layer_lost(self) -> None:
        """The watchdog found the channel layer down or wiped: this socket may be deaf."""
        await self.reject(
            Rejection.SERVICE_UNAVAILABLE,
            "lost contact with the message bus; reconnect and recover with after=<last id>",
        )

    async def going_away(self) -> None:
        """The server is shutting down: close with 1001 so the client reconnects elsewhere."""
        if not self.closing:
            self.closing = True
            await self.close(code=1001)

    async def websocket_disconnect(self, message):
        self.closing = True
        liveness.socket_closed(self)
        timer = getattr(self, "expiry_timer", None)
        if timer is not None:
            timer.cancel()
        if self.group_name:
            try:
                await self.channel_layer.group_discard(self.group_name, self.channel_name)
            except CHANNEL_LAYER_ERRORS:
                logger.warning("could not leave %s: channel layer unavailable", self.group_name)
        await super().websocket_disconnect(message)


class ChatConsumer(BaseChatConsumer):
    """A real room: JWT-authenticated members only; every message stored, then broadcast."""

    async def connect(self):
        room_id = self.scope["url_route"]["kwargs"]["room_id"]
        rejection = await self.connection_rejection(room_id)
        if rejection is not None:
            if rejection.close_code == CloseCode.UNAUTHORIZED:
                failed_handshakes().allow(client_ip(self.scope))  # spends one failure token
            detail = HANDSHAKE_RATE_LIMITED if rejection == Rejection.RATE_LIMITED else None
            return await self.reject(rejection, detail)
        if not await self.join_group(events.room_group_name(self.room.pk)):
            return
        await self.accept()
        self.close_when_token_expires()
        await self.send(
            text_data=protocol.connection_established_frame(
                room={"id": str(self.room.pk), "name": self.room.name, "type": self.room.type},
                user=protocol.user_payload(self.user.pk, self.user.username),
            )
        )
        logger.info("WebSocket connected: user=%s room=%s", self.user.username, self.room.pk)

    async def connection_rejection(self, room_id: str) -> Rejection | None:
        """The first failing check, in the protocol's order: origin, auth, room, membership."""
        if not origin_allowed(self.scope, public_room=False):
            return Rejection.ORIGIN_NOT_ALLOWED
        if failed_handshakes().exhausted(client_ip(self.scope)):
            return Rejection.RATE_LIMITED
        self.user = self.scope["user"]
        if not self.user.is_authenticated:
            return self.scope.get("auth_error") or Rejection.AUTHENTICATION_REQUIRED
        try:
            self.room, rejection = await database_sync_to_async(room_for_connection)(
                user=self.user, room_id=room_id
            )
        except DatabaseError:
            logger.exception("database unavailable while checking room access")
            return Rejection.SERVICE_UNAVAILABLE
        return rejection

    async def handle_chat_message(self, frame: ClientFrame) -> None:
        try:
            async with room_sequence(self.room.pk):
                result = await database_sync_to_async(message_create)(
                    room=self.room, author=self.user, text=frame.message, client_id=frame.client_id
                )
                rendered = protocol.dumps(protocol.message_payload(result.message))
                delivered = not result.created or await self.broadcast(rendered)
        except DatabaseError:
            logger.exception("message not stored: user=%s room=%s", self.user, self.room.pk)
            return await self.send_error(
                FrameError.NOT_PERSISTED, "message was not stored and nobody received it; resend"
            )
        if not result.created:
            await self.send(text_data=rendered)  # a retry: acknowledge it to the sender only
        elif not delivered:
            # Stored but not delivered: acknowledge it, then make the client reconnect and
            # recover the room with `after=` once the channel layer is back.
            await self.send(text_data=rendered)
            await self.reject(Rejection.SERVICE_UNAVAILABLE)

    async def handle_sync(self, frame: ClientFrame) -> None:
        """`chat.sync`: the messages after an id, as `chat.history` (one page of up to 200)."""
        try:
            page = await database_sync_to_async(_history_after)(self.room, frame.after)
        except DatabaseError:
            logger.exception("history unavailable: room=%s", self.room.pk)
            return await self.reject(Rejection.SERVICE_UNAVAILABLE)
        await self.send(text_data=page)

    def shared_rate_limit(self) -> BucketRegistry:
        self.shared_rate_key = self.user.pk
        return registry(
            "user",
            rate=settings.CHAT_USER_RATE_LIMIT_PER_SECOND,
            burst=settings.CHAT_USER_RATE_LIMIT_BURST,
        )

    def close_when_token_expires(self) -> None:
        """An access token that expires while connected closes its socket at expiry."""
        expires_at = self.scope.get("token_expires_at")
        if expires_at is None:
            return
        delay = max(0.0, expires_at - time.time())
        loop = asyncio.get_running_loop()
        self.expiry_timer = loop.call_later(delay, lambda: loop.create_task(self.token_expired()))

    async def token_expired(self) -> None:
        await self.reject(
            Rejection.TOKEN_EXPIRED,
            "access token expired while connected; refresh it and reconnect",
        )

    async def member_removed(self, event):
        """Removed from the room, or deactivated: that user's sockets to this room close."""
        if event["user_id"] == self.user.pk:
            reason = Rejection(event.get("reason", Rejection.REMOVED_FROM_ROOM))
            await self.reject(reason)


class TestChatConsumer(BaseChatConsumer):
    """The public echo-broadcast room `teste`: no token, nothing stored."""

    async def connect(self):
        if not settings.CHAT_PUBLIC_TEST_ROOM:
            return await self.reject(Rejection.ROOM_NOT_FOUND, "the public test room is off")
        if not origin_allowed(self.scope, public_room=True):
            return await self.reject(Rejection.ORIGIN_NOT_ALLOWED)
        self.display_name = _query_display_name(self.scope) or ANONYMOUS_NAME
        if not await self.join_group(events.PUBLIC_ROOM_GROUP):
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

    def shared_rate_limit(self) -> BucketRegistry:
        self.shared_rate_key = client_ip(self.scope)
        return registry(
            "public-ip",
            rate=settings.CHAT_PUBLIC_IP_RATE_LIMIT_PER_SECOND,
            burst=settings.CHAT_PUBLIC_IP_RATE_LIMIT_BURST,
        )


class NotFoundConsumer(BaseChatConsumer):
    """Any other path under /ws/: a clear 4404 instead of a routing error."""

    async def connect(self):
        await self.reject(Rejection.ROOM_NOT_FOUND, "no chat endpoint at this path")


def client_ip(scope: dict) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


def failed_handshakes() -> BucketRegistry:
    return registry(
        "failed-handshakes",
        rate=settings.CHAT_FAILED_HANDSHAKES_PER_MINUTE / 60,
        burst=settings.CHAT_FAILED_HANDSHAKES_BURST,
    )


async def _refuse_handshake(receive, send, rejection: Rejection) -> None:
    """Reject a handshake at the raw ASGI level, still with a reason the client can read."""
    if (await receive())["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    await send(
        {
            "type": "websocket.send",
            "text": protocol.error_frame(rejection, rejection.default_detail),
        }
    )
    await send({"type": "websocket.close", "code": int(rejection.close_code)})


def _history_after(room, after: int) -> str:
    page = message_list(room=room, after=after, limit=SYNC_PAGE_SIZE)
    messages = [protocol.message_payload(message) for message in page.results]
    return protocol.history_frame(messages, has_more=page.has_more)


def _utf8_length(text: str) -> int:
    # Cheap bound first: a str of n characters is at most 4n bytes.
    if len(text) * 4 <= settings.CHAT_MAX_FRAME_BYTES:
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


def _query_display_name(scope: dict) -> str | None:
    names = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("username")
    if names and names[0].strip():
        return names[0].strip()[:50]
    return None
