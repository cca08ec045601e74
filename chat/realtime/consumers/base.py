"""Framing shared by every chat consumer: rejections with reasons, limits, parsing."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import logging
import secrets

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings

from accounts.client_address import scope_client_address
from chat import adapters, protocol
from chat.adapters.backpressure import OVER_BUFFER_BUDGET, watch_send_backlog
from chat.adapters.broadcast_frames import framed_socket, write_frame
from chat.observability import metrics
from chat.protocol import (
    CHAT_DELETE,
    CHAT_EDIT,
    CHAT_MESSAGE,
    ClientFrame,
    FrameError,
    ProtocolError,
    Rejection,
)
from chat.realtime import liveness
from chat.realtime.delivery import CHANNEL_LAYER_ERRORS, broadcast_event
from chat.realtime.fanout import room_hub
from chat.realtime.ratelimit import AttemptLimiter, BucketRegistry, TokenBucket, attempt_limiter
from chat.realtime.shards import group_shard

logger = logging.getLogger("chat.realtime.consumers")

# Socket ids: unique across processes (presence on Redis keys on them) without reading
# os.urandom per handshake.
# The client_id of the frame being answered: errors carry it back (tasks a frame starts, a
# coalesced read's, inherit it). A context variable, not socket state: nothing per socket.
answering_client_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "answering_client_id", default=None
)
_PROCESS_TAG = secrets.token_hex(6)
_socket_numbers = itertools.count(1)
# Frames that write: they count against the rate limits.
RATE_LIMITED_TYPES = frozenset(
    {CHAT_MESSAGE, CHAT_EDIT, CHAT_DELETE, protocol.REACTION_ADD, protocol.REACTION_REMOVE}
)


def frame_budget(frame_type: str) -> tuple[float, int]:
    """The per-connection budget a client frame spends: (tokens a second, burst).

    The one table of them (docs/protocol.md, "Frame budgets"): the frames that write share the
    message rate limit, and also spend the per-user / per-IP buckets; every other frame type
    has a budget of its own in settings.CHAT_FRAME_BUDGETS.
    """
    if frame_type in RATE_LIMITED_TYPES:
        return settings.CHAT_RATE_LIMIT_PER_SECOND, settings.CHAT_RATE_LIMIT_BURST
    return settings.CHAT_FRAME_BUDGETS[frame_type]


class BaseChatConsumer(AsyncWebsocketConsumer):
    """Shared framing: rejections with reasons, size and binary limits, parsing, rate limit."""

    group_name: str | None = None
    user = None  # who is connected, once a consumer has authenticated the socket
    # Client frame type -> handler: an explicit table, never getattr on a client's string.
    frame_handlers: dict = {}

    # No layer channel per socket: room events reach a socket through its process's RoomHub
    # (chat.realtime.fanout). A socket then costs no layer queue, no receive task and, on Redis, no
    # SUBSCRIBE of its own; `channel_name` is only its id (hub, presence, `except`).
    channel_layer_alias = None

    async def __call__(self, scope, receive, send):
        self.channel_name = f"socket.{_PROCESS_TAG}.{next(_socket_numbers)}"
        await super().__call__(scope, receive, send)

    async def dispatch(self, message):
        """Any unexpected failure: log it, tell the client `internal_error` (1011), close.

        Unlike Channels' dispatch, no `aclose_old_connections()` before each handler: that is
        a round trip to the database thread for every frame, while our handlers reach the
        database only through database_sync_to_async, which does the same clean-up around
        each call, in the thread that uses the connection.
        """
        if message["type"] == "websocket.disconnect":
            # Before any handler: ChatConsumer's clean-up (presence, a pending read) may fail
            # or outlast daphne's application_close_timeout and be cancelled; the socket is
            # gone either way, and the open-sockets gauge must not keep it.
            liveness.socket_closed(self)
        try:
            handler = getattr(self, get_handler_name(message), None)
            if handler is None:
                raise ValueError(f"no handler for message type {message['type']}")
            await handler(message)
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
        if not self.closing:  # reject() accepts too, to send its error frame
            metrics.handshake_accepted()
        await super().accept(subprotocol, headers)
        if adapters.enabled("backpressure"):
            self.send_backlog = watch_send_backlog(self.base_send)
        if adapters.enabled("broadcast_frames"):
            self.framed_socket = framed_socket(self.base_send)
        if not self.holds_events_until_established:
            await self.release_events()

    # A socket joins its groups (room, user) before it is accepted: events that arrive in
    # between wait here, and go out once the socket may be written to (ChatConsumer: after
    # connection.established, which is every socket's first frame).
    holds_events_until_established = False

    async def release_events(self) -> None:
        waiting, self.waiting_events = self.waiting_events, None
        for event in waiting or ():
            await self.room_event(event)

    async def websocket_connect(self, message):
        self.closing = False
        self.accepted = False
        self.redis_shard = 0  # set by join_group
        self.waiting_events = []  # until release_events
        self.send_backlog = None  # set at accept, where the server exposes one
        self.framed_socket = None  # likewise (chat.adapters.broadcast_frames)
        rate, burst = frame_budget(CHAT_MESSAGE)
        self.rate_limit = TokenBucket(rate=rate, burst=burst)
        self.frame_buckets = None  # frame type -> TokenBucket, made on a type's first frame
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
            metrics.handshake_refused(int(rejection.close_code))
            await self.accept()
        frame = protocol.error_frame(
            rejection,
            detail,
            client_id=answering_client_id.get(),
            close_code=int(rejection.close_code),
        )
        await self.send(text_data=frame)  # past any budget
        await self.close(code=int(rejection.close_code))

    async def send(self, text_data=None, bytes_data=None, close=False):
        """Every frame of this socket's own (answers, errors) passes its buffer budget first."""
        if not self.closing and self.fallen_behind(text_data or bytes_data):
            return await self.layer_overflow({})
        await super().send(text_data=text_data, bytes_data=bytes_data, close=close)

    def fallen_behind(self, frame: str | bytes | None) -> bool:
        """True (and logged) when this socket's client does not read what it is sent."""
        backlog = self.send_backlog
        if backlog is None:
            return False  # not under daphne: unknown, keep going
        why = backlog.behind(len(frame or ""))
        if why is None:
            return False
        reason = metrics.BUFFER_BYTES if why.endswith(OVER_BUFFER_BUDGET) else metrics.NOT_READING
        metrics.slow_socket_closes.labels(reason).inc()
        logger.warning(
            "slow receiver: user=%s path=%s (%s)", self.log_user(), self.scope["path"], why
        )
        return True

    async def send_error(self, code: FrameError, detail: str) -> None:
        frame = protocol.error_frame(code, detail, client_id=answering_client_id.get())
        await self.send(text_data=frame)

    def log_user(self) -> str:
        user = self.user
        return user.username if user is not None and user.is_authenticated else "anonymous"

    async def receive(self, text_data=None, bytes_data=None):
        # One task reads every frame of the socket: each frame sets what it answers anew.
        answering_client_id.set(None)
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
            answering_client_id.set(error.client_id)
            return await self.send_error(error.code, error.detail)
        answering_client_id.set(frame.client_id)
        handler = self.frame_handlers.get(frame.type)
        if handler is None:
            return await self.send_error(
                FrameError.UNKNOWN_TYPE, f"'{frame.type}' is not available in this room"
            )
        if not await self.within_rate_limit(frame.type):
            return
        await handler(self, frame)

    async def handle_ping(self, frame: ClientFrame) -> None:
        await self.send(text_data=protocol.pong_frame())

    def shared_rate_limit(self) -> BucketRegistry | None:
        """A limit shared with other sockets (per user, per IP), keyed by shared_rate_key."""
        return None

    shared_rate_key = None

    async def within_rate_limit(self, frame_type: str = CHAT_MESSAGE) -> bool:
        """Spend one token of the frame's budget; refuse it (`rate_limited`, 4429) if none."""
        if self.spend_budget(frame_type):
            self.rate_limit_strikes = 0
            return True
        self.rate_limit_strikes += 1
        metrics.rate_limited_frames.labels(frame_type).inc()
        if self.rate_limit_strikes > settings.CHAT_RATE_LIMIT_STRIKES:
            await self.reject(Rejection.RATE_LIMITED)
        else:
            rate, _ = frame_budget(frame_type)
            what = "messages" if frame_type in RATE_LIMITED_TYPES else f"{frame_type} frames"
            await self.send_error(
                FrameError.RATE_LIMITED, f"too many {what}; at most {rate:g} per second"
            )
        return False

    def spend_budget(self, frame_type: str) -> bool:
        if frame_type not in RATE_LIMITED_TYPES:
            return self.frame_bucket(frame_type).allow()
        shared = self.shared_rate_limit()
        return self.rate_limit.allow() and (shared is None or shared.allow(self.shared_rate_key))

    def frame_bucket(self, frame_type: str) -> TokenBucket:
        buckets = self.frame_buckets
        if buckets is None:
            buckets = self.frame_buckets = {}
        bucket = buckets.get(frame_type)
        if bucket is None:
            rate, burst = frame_budget(frame_type)
            bucket = buckets[frame_type] = TokenBucket(rate=rate, burst=burst)
        return bucket

    async def chat_broadcast(self, event) -> bool:
        """A frame for every socket of the room (but `except`), serialized once by the sender."""
        if self.closing or event.get("except") == self.channel_name:
            return False
        return await self.write_room_frame(event, event["frame"])

    async def chat_personal(self, event) -> bool:
        """A room frame with variants for some users (`me` in reactions): this user's, or the
        common one."""
        if self.closing:
            return False
        variant = event["variant_of_user"].get(str(getattr(self.user, "pk", None)))
        frame = event["frame"] if variant is None else event["variants"][variant]
        if frame is None:
            return False
        return await self.write_room_frame(event, frame)

    async def write_room_frame(self, event: dict, frame: str) -> bool:
        """Write a room frame; False when the socket fell behind (it is closed instead)."""
        if self.fallen_behind(frame):
            await self.layer_overflow(event)
            return False
        framed = self.framed_socket
        if framed is None or not write_frame(framed, frame):
            await self.send(text_data=frame)
        return True

    async def room_event(self, event: dict) -> bool | None:
        """An event of this socket's room, handed over by the process's RoomHub (fanout);
        truthy when a frame was written (the hub counts deliveries)."""
        if self.waiting_events is not None:
            self.waiting_events.append(event)
            return None
        handler = self.room_event_handlers.get(event["type"])
        if handler is None:
            return None
        try:
            return await handler(self, event)
        except Exception as error:
            if self.closing:
                return None
            # Usually the client left while the event was on its way (its disconnect is still
            # queued); otherwise a socket that cannot be written to must not stay open, deaf.
            self.closing = True
            logger.info(
                "could not write to %s on %s (%s: %s); closing it",
                self.log_user(),
                self.scope["path"],
                type(error).__name__,
                error,
            )
            with contextlib.suppress(Exception):
                await self.close(code=int(Rejection.INTERNAL_ERROR.close_code))

    async def chat_user_frame(self, event) -> bool:
        """A frame for one user's sockets (notifications), through their shard's group."""
        if self.closing or event["user_id"] != getattr(self.user, "pk", None):
            return False
        return await self.write_room_frame(event, event["frame"])

    room_event_handlers = {
        "chat.broadcast": chat_broadcast,
        "chat.personal": chat_personal,
        "chat.user_frame": chat_user_frame,
    }

    async def layer_overflow(self, event):
        """This socket fell behind (fanout, chat.adapters.backpressure): close it, never drop."""
        await self.reject(
            Rejection.SERVICE_UNAVAILABLE,
            "you fell too far behind the room; reconnect and recover with after=<last id>",
        )

    async def join_group(self, group_name: str) -> bool:
        try:
            await room_hub().join(group_name, self)
        except CHANNEL_LAYER_ERRORS:
            logger.exception("channel layer unavailable while joining %s", group_name)
            await self.reject(Rejection.SERVICE_UNAVAILABLE)
            return False
        self.group_name = group_name
        # The Redis server the room lives on: the one the watchdog checks for this socket.
        self.redis_shard = group_shard(group_name)
        liveness.socket_opened(self)
        return True

    async def broadcast(self, frame: str, *, except_self: bool = False) -> bool:
        event = broadcast_event(frame)
        if except_self:
            event["except"] = self.channel_name
        try:
            await get_channel_layer().group_send(self.group_name, event)
        except CHANNEL_LAYER_ERRORS:
            logger.exception("channel layer unavailable while broadcasting to %s", self.group_name)
            return False
        return True

    def room_type(self) -> str:
        """The open-sockets gauge's label (Room.type, or "public")."""
        return "public"

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
                await room_hub().leave(self.group_name, self)
            except CHANNEL_LAYER_ERRORS:
                logger.warning("could not leave %s: channel layer unavailable", self.group_name)
        await super().websocket_disconnect(message)


def client_ip(scope: dict) -> str:
    """The address per-IP limits key on: the peer, or what trusted proxies say it is."""
    return scope_client_address(scope)


def failed_handshakes() -> AttemptLimiter:
    return attempt_limiter(
        "failed-handshakes",
        rate=settings.CHAT_FAILED_HANDSHAKES_PER_MINUTE / 60,
        burst=settings.CHAT_FAILED_HANDSHAKES_BURST,
    )


def _utf8_length(text: str) -> int:
    # Cheap bound first: a str of n characters is at most 4n bytes.
    if len(text) * 4 <= settings.CHAT_MAX_FRAME_BYTES:
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))
