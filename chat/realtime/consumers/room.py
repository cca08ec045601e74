"""ChatConsumer: a real room. Members only; every message stored, then broadcast."""

from __future__ import annotations

import asyncio
import logging
import time

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import DatabaseError

from chat import protocol
from chat.domain.access import AccessLost
from chat.domain.refusals import Refusal
from chat.domain.selectors import member_change_list, message_list, reactions_of
from chat.domain.services import (
    message_create,
    message_delete,
    message_edit,
    reaction_add,
    reaction_remove,
    read_marker_set,
)
from chat.protocol import (
    CHAT_DELETE,
    CHAT_EDIT,
    CHAT_MESSAGE,
    CHAT_SYNC,
    CHAT_SYNC_CHANGES,
    PING,
    REACTION_ADD,
    REACTION_REMOVE,
    READ,
    TYPING,
    ClientFrame,
    CloseCode,
    FrameError,
    Rejection,
)
from chat.realtime.auth import credential_from_scope
from chat.realtime.consumers.base import (
    BaseChatConsumer,
    client_ip,
    failed_handshakes,
)
from chat.realtime.delivery import CHANNEL_LAYER_ERRORS, room_group_name, user_group_name
from chat.realtime.fanout import room_hub
from chat.realtime.handshakes import HandshakeRequest, check_handshake, shared_room
from chat.realtime.origin import origin_allowed
from chat.realtime.presence import presence_store
from chat.realtime.ratelimit import BucketRegistry, TokenBucket, registry
from chat.realtime.refusals import websocket_refusal
from chat.realtime.room_writers import room_database

logger = logging.getLogger("chat.realtime.consumers")

REMOVED = Rejection.REMOVED_FROM_ROOM
# Why a member lost the room (chat.domain.access.AccessLost) -> how their sockets close.
ACCESS_LOST_REJECTIONS = {
    AccessLost.REMOVED_FROM_ROOM: REMOVED,
    AccessLost.USER_INACTIVE: Rejection.USER_INACTIVE,
    AccessLost.USER_DELETED: Rejection.TOKEN_INVALID,  # what its handshake would say
}

SYNC_PAGE_SIZE = 200
TYPING_REPEAT_SECONDS = 1.0  # a client saying "still typing" is relayed at most this often
TYPING_RELAYS_PER_SECOND = 2.0  # and any typing change at most this often, after a burst of 4
HANDSHAKE_RATE_LIMITED = "too many failed connection attempts from your address; wait and retry"


class ChatConsumer(BaseChatConsumer):
    """A real room: JWT-authenticated members only; every message stored, then broadcast."""

    holds_events_until_established = True

    async def connect(self):
        room_id = self.scope["url_route"]["kwargs"]["room_id"]
        rejection = await self.connection_rejection(room_id)
        if rejection is not None:
            detail = HANDSHAKE_RATE_LIMITED if rejection == Rejection.RATE_LIMITED else None
            return await self.reject(rejection, detail)
        if not await self.join_group(room_group_name(self.room.pk)):
            return
        if not await self.join_user_group():
            return
        await self.accept()
        self.close_when_token_expires()
        self.user_ref = protocol.user_payload(self.user.pk, self.user.username, self.user.is_bot)
        await self.send(
            text_data=protocol.connection_established_frame(
                room={
                    "id": str(self.room.pk),
                    "name": self.room.name,
                    "type": self.room.type,
                    # Read at the handshake, before this socket could hear a change: recovery
                    # from it (`chat.sync_changes`) may repeat a change, never miss one.
                    "change_seq": self.room_change_seq,
                },
                user=self.user_ref,
            )
        )
        await self.release_events()
        await self.announce_presence(online=True)
        logger.info("WebSocket connected: user=%s room=%s", self.user.username, self.room.pk)

    async def connection_rejection(self, room_id: str) -> Rejection | None:
        """The first failing check, in the protocol's order: origin, auth, room, membership.

        Failed authentications (4401) count against the client address's limit, exactly even
        when many run at once (chat.realtime.ratelimit.AttemptLimiter); past it, an address is
        refused before any token or database work."""
        if not origin_allowed(self.scope, public_room=False):
            return Rejection.ORIGIN_NOT_ALLOWED
        address, handshakes = client_ip(self.scope), failed_handshakes()
        if not await handshakes.admit(address):
            return Rejection.RATE_LIMITED
        rejection = None
        try:
            rejection = await self.access_rejection(room_id)
        finally:
            failed = rejection is not None and rejection.close_code == CloseCode.UNAUTHORIZED
            handshakes.settle(address, failed=failed)
        return rejection

    async def access_rejection(self, room_id: str) -> Rejection | None:
        """Authentication, room and membership, checked with other handshakes waiting."""
        credential = credential_from_scope(self.scope)
        if credential is None:
            return Rejection.AUTHENTICATION_REQUIRED
        try:
            check = await check_handshake(HandshakeRequest(credential, room_id, self.scope["path"]))
        except DatabaseError:
            logger.exception("database unavailable while checking the token and room access")
            return Rejection.SERVICE_UNAVAILABLE
        self.user, self.token_expires_at = check.auth.user, check.auth.expires_at
        if check.room is not None:
            # This handshake's reading (chat.domain.access), not the shared room's.
            self.room_change_seq = getattr(check.room, "change_seq", 0)
        self.room = shared_room(check.room) if check.room is not None else None
        return check.rejection

    # --- messages, edits, deletes, read markers: domain operations ----------------------------

    async def handle_chat_message(self, frame: ClientFrame) -> None:
        """`chat.message`: stored and announced by the domain; the sender's copy is its ack."""
        try:
            result = await room_database(self.room.pk)(message_create)(
                room=self.room,
                author=self.user,
                text=frame.message,
                client_id=frame.client_id,
                reply_to=frame.reply_to,
                attachments=frame.attachments,
            )
        except Refusal as refusal:
            return await self.refused(refusal)
        except DatabaseError:
            logger.exception("message not stored: user=%s room=%s", self.user, self.room.pk)
            return await self.send_error(
                FrameError.NOT_PERSISTED, "message was not stored and nobody received it; resend"
            )
        if not result.created:  # a retry: acknowledge it to the sender only, as it is now
            stored = await database_sync_to_async(_stored_message_frame)(result.message, self.user)
            await self.send(text_data=stored)
        elif result.announcement.delivered is False:
            # Stored but not delivered: acknowledge it, then make the client reconnect and
            # recover the room with `after=` once the channel layer is back.
            await self.send(text_data=protocol.dumps(protocol.message_payload(result.message)))
            await self.reject(Rejection.SERVICE_UNAVAILABLE)

    async def handle_edit(self, frame: ClientFrame) -> None:
        """`chat.edit`: the author replaces the text; members get `chat.message.updated`."""
        await self.change_room(
            message_edit,
            room=self.room,
            message_id=frame.message_id,
            editor=self.user,
            text=frame.message,
        )

    async def handle_delete(self, frame: ClientFrame) -> None:
        """`chat.delete`: author or room admin; members get `chat.message.deleted`."""
        await self.change_room(
            message_delete, room=self.room, message_id=frame.message_id, actor=self.user
        )

    async def handle_read(self, frame: ClientFrame) -> None:
        """`read`: move this member's read marker; every member (and device) gets `read`.

        Coalesced: at most one a CHAT_READ_COALESCE_SECONDS per socket; the reads between go
        as one, the furthest, when that time is up (or when the socket closes), so a client
        reading fast costs the room one `read` frame a second, not one per message."""
        now = time.monotonic()
        interval = settings.CHAT_READ_COALESCE_SECONDS
        if self.read_flush is None and now - self.read_at >= interval:
            self.read_at = now
            return await self.read_store(frame.message_id)
        self.read_pending = max(self.read_pending or 0, frame.message_id)
        if self.read_flush is None:
            loop = asyncio.get_running_loop()
            delay = max(0.0, self.read_at + interval - now)
            self.read_flush = loop.call_later(delay, lambda: loop.create_task(self.read_flushed()))

    read_at = float("-inf")
    read_pending: int | None = None
    read_flush: asyncio.TimerHandle | None = None

    async def read_flushed(self) -> None:
        self.read_flush = None
        message_id, self.read_pending = self.read_pending, None
        if message_id is None:
            return
        self.read_at = time.monotonic()
        if self.closing:  # closed by the server meanwhile: the read is still the member's
            return await self.read_store_quietly(message_id)
        await self.read_store(message_id)

    async def read_store_quietly(self, message_id: int) -> None:
        try:
            await room_database(self.room.pk)(read_marker_set)(
                room=self.room, user=self.user, message_id=message_id
            )
        except Exception:  # the socket is gone: log it, nobody is left to tell
            logger.warning("read marker of a closed socket not stored", exc_info=True)

    async def read_store(self, message_id: int) -> None:
        await self.change_room(
            read_marker_set, room=self.room, user=self.user, message_id=message_id
        )

    async def handle_reaction(self, frame: ClientFrame) -> None:
        """`reaction.add` / `reaction.remove`: members get `chat.message.reactions`."""
        operation = reaction_add if frame.type == REACTION_ADD else reaction_remove
        await self.change_room(
            operation,
            room=self.room,
            message_id=frame.message_id,
            user=self.user,
            emoji=frame.emoji,
        )

    async def change_room(self, operation, **arguments) -> None:
        """Run a domain operation on the room's writer; members hear of it from the domain."""
        try:
            change = await room_database(self.room.pk)(operation)(**arguments)
        except Refusal as refusal:
            return await self.refused(refusal)
        except DatabaseError:
            logger.exception("change not stored: user=%s room=%s", self.user, self.room.pk)
            return await self.send_error(FrameError.NOT_PERSISTED, "change was not stored")
        if change.announcement is not None and change.announcement.delivered is False:
            # Stored, but the room did not hear of it: reconnect, and recover with `after=`.
            await self.reject(Rejection.SERVICE_UNAVAILABLE)

    async def refused(self, refusal: Refusal) -> None:
        """A domain refusal as the WebSocket's table says: an error frame, or a rejection."""
        code = websocket_refusal(refusal)
        if isinstance(code, Rejection):
            return await self.reject(code, refusal.detail)
        await self.send_error(code, refusal.detail)

    async def handle_sync(self, frame: ClientFrame) -> None:
        """`chat.sync`: the messages after an id, as `chat.history` (one page of up to 200)."""
        try:
            page = await database_sync_to_async(_history_after)(self.room, frame.after, self.user)
        except DatabaseError:
            logger.exception("history unavailable: room=%s", self.room.pk)
            return await self.reject(Rejection.SERVICE_UNAVAILABLE)
        await self.send(text_data=page)

    async def handle_sync_changes(self, frame: ClientFrame) -> None:
        """`chat.sync_changes`: messages changed after a change_seq, as `chat.changes`."""
        try:
            page = await database_sync_to_async(_changes_after)(self.room, frame.after, self.user)
        except DatabaseError:
            logger.exception("changes unavailable: room=%s", self.room.pk)
            return await self.reject(Rejection.SERVICE_UNAVAILABLE)
        if page is None:  # removed from the room meanwhile: its event closes the socket
            return await self.reject(REMOVED)
        await self.send(text_data=page)

    # --- typing, presence ---------------------------------------------------------------------

    async def handle_typing(self, frame: ClientFrame) -> None:
        """`typing`: relayed to the other members, throttled, never stored, stops by itself."""
        now = time.monotonic()
        repeat = frame.is_typing and getattr(self, "typing_since", None) is not None
        self.restart_typing_timer(frame.is_typing)
        if repeat and now - self.typing_relayed_at < TYPING_REPEAT_SECONDS:
            return
        if not frame.is_typing and getattr(self, "typing_since", None) is None:
            return
        if not self.typing_bucket().allow():
            # A client flipping true/false in a loop: typing is best effort, let it go. But a
            # dropped stop is relayed once the bucket refills, or observers see typing forever.
            if not frame.is_typing:
                self.stop_typing_after(1 / TYPING_RELAYS_PER_SECOND)
            return
        self.typing_since = now if frame.is_typing else None
        self.typing_relayed_at = now
        await self.relay_typing(frame.is_typing)

    def typing_bucket(self) -> TokenBucket:
        if getattr(self, "_typing_bucket", None) is None:
            self._typing_bucket = TokenBucket(rate=TYPING_RELAYS_PER_SECOND, burst=4)
        return self._typing_bucket

    def restart_typing_timer(self, is_typing: bool) -> None:
        timer = getattr(self, "typing_timer", None)
        if timer is not None:
            timer.cancel()
        self.typing_timer = None
        if is_typing:
            self.stop_typing_after(settings.CHAT_TYPING_TIMEOUT_SECONDS)

    def stop_typing_after(self, seconds: float) -> None:
        """Arm the one typing timer: the stop is relayed then, unless typing changes first."""
        timer = getattr(self, "typing_timer", None)
        if timer is not None:
            timer.cancel()
        loop = asyncio.get_running_loop()
        self.typing_timer = loop.call_later(seconds, lambda: loop.create_task(self.stop_typing()))

    async def stop_typing(self) -> None:
        if getattr(self, "typing_since", None) is not None and not self.closing:
            self.typing_since = None
            await self.relay_typing(False)

    async def relay_typing(self, is_typing: bool) -> None:
        """Typing frames go to everyone but the typist's own socket."""
        frame = protocol.typing_frame(room_id=self.room.pk, user=self.user_ref, is_typing=is_typing)
        await self.broadcast(frame, except_self=True)

    async def announce_presence(self, *, online: bool) -> None:
        """Tell the room when this user's first socket opens or last socket closes."""
        try:
            live = await presence_store().change(
                self.room.pk, self.user.pk, self.channel_name, join=online
            )
        except Exception:  # presence is best effort; the chat itself must go on
            logger.exception("presence unavailable: room=%s", self.room.pk)
            return
        if live == (1 if online else 0):
            frame = protocol.presence_frame(room_id=self.room.pk, user=self.user_ref, online=online)
            await self.broadcast(frame, except_self=True)

    def room_type(self) -> str:
        return self.room.type

    def presence_entry(self) -> tuple | None:
        """(room id, user id, connection id) for the liveness watchdog to renew."""
        if getattr(self, "user_ref", None) is None or self.closing:
            return None
        return (self.room.pk, self.user.pk, self.channel_name)

    # --- lifecycle ---------------------------------------------------------------------------

    def shared_rate_limit(self) -> BucketRegistry:
        self.shared_rate_key = self.user.pk
        return registry(
            "user",
            rate=settings.CHAT_USER_RATE_LIMIT_PER_SECOND,
            burst=settings.CHAT_USER_RATE_LIMIT_BURST,
        )

    def close_when_token_expires(self) -> None:
        """An access token that expires while connected closes its socket at expiry."""
        if self.token_expires_at is None:
            return
        delay = max(0.0, self.token_expires_at - time.time())
        loop = asyncio.get_running_loop()
        # A bound method, not a closure: every open socket keeps this timer.
        self.expiry_timer = loop.call_later(delay, self.start_token_expiry)

    def start_token_expiry(self) -> None:
        asyncio.get_running_loop().create_task(self.token_expired())

    async def token_expired(self) -> None:
        await self.reject(
            Rejection.TOKEN_EXPIRED,
            "access token expired while connected; refresh it and reconnect",
        )

    async def join_user_group(self) -> bool:
        """Notifications reach every socket of the user, whatever room it is in; through the
        copy of the user's group on the room's Redis server, the one this socket watches."""
        group = user_group_name(self.user.pk, self.redis_shard)
        try:
            await room_hub().join(group, self)
        except CHANNEL_LAYER_ERRORS:
            logger.exception("channel layer unavailable while joining the user's group")
            await self.reject(Rejection.SERVICE_UNAVAILABLE)
            return False
        self.user_group = group
        return True

    async def member_removed(self, event):
        """Removed from the room, or deactivated: that user's sockets to this room close; the
        other members are told (`member.removed`)."""
        if event["user_id"] == self.user.pk:
            return await self.reject(ACCESS_LOST_REJECTIONS.get(event["reason"], REMOVED))
        if event.get("frame") is not None:
            return await self.chat_broadcast(event)
        return None

    async def api_key_revoked(self, event):
        """The API key this socket was opened with was revoked (apikeys): it closes; the
        account's sockets of other keys stay."""
        if event["key_id"] == self.api_key_id():
            await self.reject(Rejection.API_KEY_REVOKED)

    def api_key_id(self) -> int | None:
        """The API key the socket was opened with (chat.realtime.auth), if any."""
        return getattr(self.user, "api_key_id", None)

    async def websocket_disconnect(self, message):
        if self.read_flush is not None:  # a coalesced read still waiting: store it, not lose it
            self.read_flush.cancel()
            self.read_flush = None
            pending, self.read_pending = self.read_pending, None
            if pending is not None:
                await self.read_store_quietly(pending)
        user_group = getattr(self, "user_group", None)
        if user_group is not None:
            self.user_group = None
            try:
                await room_hub().leave(user_group, self)
            except CHANNEL_LAYER_ERRORS:
                logger.warning("could not leave %s: channel layer unavailable", user_group)
        if getattr(self, "user_ref", None) is not None:
            self.restart_typing_timer(False)
            if getattr(self, "typing_since", None) is not None:
                await self.relay_typing(False)
            await self.announce_presence(online=False)
        await super().websocket_disconnect(message)

    room_event_handlers = {
        **BaseChatConsumer.room_event_handlers,
        "member.removed": member_removed,
        "api_key.revoked": api_key_revoked,
    }

    frame_handlers = {
        CHAT_MESSAGE: handle_chat_message,
        PING: BaseChatConsumer.handle_ping,
        CHAT_SYNC: handle_sync,
        CHAT_SYNC_CHANGES: handle_sync_changes,
        CHAT_EDIT: handle_edit,
        CHAT_DELETE: handle_delete,
        READ: handle_read,
        TYPING: handle_typing,
        REACTION_ADD: handle_reaction,
        REACTION_REMOVE: handle_reaction,
    }


def _stored_message_frame(message, user) -> str:
    reactions = reactions_of([message])
    payload = protocol.message_payload(
        message, reactions=reactions.get(message.pk, ()), viewer_id=user.pk
    )
    return protocol.dumps(payload)


def _history_after(room, after: int, user) -> str:
    page = message_list(room=room, after=after, limit=SYNC_PAGE_SIZE)
    messages = protocol.page_payloads(page, viewer_id=user.pk)
    return protocol.history_frame(messages, has_more=page.has_more)


def _changes_after(room, after: int, user) -> str | None:
    page = member_change_list(user=user, room_id=room.pk, after=after, limit=SYNC_PAGE_SIZE)
    if page is None:
        return None
    messages = protocol.page_payloads(page, viewer_id=user.pk)
    return protocol.changes_frame(messages, has_more=page.has_more)
