"""Delivery of the domain's events to open sockets: group names, layer events, the publisher.

The domain (chat.domain.services) announces committed changes as chat.domain.events;
`publish` turns each into the frame members receive, rendered once, and hands it to the
channel layer's group of the room: every server process subscribed to the room gets it once
and writes it to its own sockets (chat.realtime.fanout). Installed as the domain's
publisher by ChatConfig.ready.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from redis.exceptions import RedisError

from chat import protocol
from chat.domain import events
from chat.realtime import shards

logger = logging.getLogger(__name__)

PUBLIC_ROOM_GROUP = "chat.public.teste"
# What a channel layer raises when its backing service (Redis) is unreachable.
CHANNEL_LAYER_ERRORS = (OSError, RedisError)


def room_group_name(room_id: uuid.UUID) -> str:
    # A hex UUID can never equal the public group's name, so the public room cannot reach it.
    return f"chat.room.{room_id.hex}"


USER_SHARDS = 64


def user_group_name(user_id: int, redis_shard: int = 0) -> str:
    """The group every socket of a user joins, whatever room it is in (notifications): one of
    USER_SHARDS, so a process holds at most that many subscriptions for its users however many
    are connected (one per user cost each socket a subscription and a reader task).

    With several Redis servers each has its copy of the group (chat.realtime.shards): a socket
    joins the copy on its room's server, so it depends on that server alone."""
    return shards.group_on_shard(f"chat.users.{int(user_id) % USER_SHARDS}", redis_shard)


def user_group_copies(user_id: int) -> list[str]:
    """Every server's copy of the user's group: what a sender publishes to."""
    return [user_group_name(user_id, shard) for shard in shards.every_shard()]


def user_event(user_id: int, frame: str) -> dict:
    """A frame for the sockets of one user in its shard's group (the others pass it over)."""
    return {"type": "chat.user_frame", "user_id": int(user_id), "frame": frame}


def broadcast_event(frame: str) -> dict:
    """A message for every socket of a group; `frame` is serialized once, not per receiver."""
    return {"type": "chat.broadcast", "frame": frame}


def personal_event(frame: str | None, frames: dict[int, str]) -> dict:
    """A frame for every socket of a group (None: for nobody else), but for the users in
    `frames`, who get theirs (each rendered once; users who would get the same frame share
    it)."""
    variants = list(dict.fromkeys(frames.values()))
    index = {frame: n for n, frame in enumerate(variants)}
    return {
        "type": "chat.personal",
        "frame": frame,
        "variants": variants,
        "variant_of_user": {str(user): index[frame] for user, frame in frames.items()},
    }


def member_removed_event(user_id: int, reason: str, frame: str | None) -> dict:
    """The user's sockets to the room close with `reason`; the others receive `frame`, if any."""
    return {"type": "member.removed", "user_id": user_id, "reason": reason, "frame": frame}


def api_key_revoked_event(user_id: int, key_id: int) -> dict:
    """The sockets that key opened close (`api_key_revoked`); the user's others stay."""
    return {"type": "api_key.revoked", "user_id": int(user_id), "key_id": int(key_id)}


def layer_event(event: events.RoomEvent) -> dict:
    """The channel-layer event for a domain event, its frame rendered once for every socket."""
    if isinstance(event, events.MemberRemoved):
        # A deactivated user is still a member: only their own sockets hear of it.
        frame = (
            protocol.member_removed_frame(room_id=event.room_id, user_id=event.user_id)
            if event.reason == events.REMOVED_FROM_ROOM
            else None
        )
        return member_removed_event(event.user_id, event.reason, frame)
    if isinstance(event, events.ReactionsChanged):
        return _reactions_event(event)
    if isinstance(event, events.ReadMarkerMoved) and not event.shared:
        return personal_event(None, {event.user_id: frame_of(event)})  # the reader's alone
    layer_message = broadcast_event(frame_of(event))
    if isinstance(event, events.MessageCreated):
        # Wall clock, so that every process can tell the delivery latency (metrics): store →
        # its last local write (RoomHub); processes on other hosts need synchronised clocks.
        layer_message["stored_at"] = event.message.created_at.timestamp()
    return layer_message


def _reactions_event(event: events.ReactionsChanged) -> dict:
    """Each receiver is told whether it reacted: the users who did get their own frame."""

    def frame_for(viewer_id: int | None) -> str:
        return protocol.reactions_frame(
            room_id=event.room_id,
            message_id=event.message_id,
            change_seq=event.change_seq,
            reactions=event.reactions,
            viewer_id=viewer_id,
        )

    reactors = set().union(*(reaction.user_ids for reaction in event.reactions))
    return personal_event(frame_for(None), {user: frame_for(user) for user in reactors})


def frame_of(event: events.RoomEvent) -> str:
    """The frame members receive for a domain event (except MemberRemoved: layer_event)."""
    match event:
        case events.MessageCreated(message=message):
            return protocol.dumps(protocol.message_payload(message))
        case events.MessageEdited(message=message) | events.ThreadUpdated(message=message):
            return protocol.message_updated_frame(message)
        case events.MessageDeleted(message=message):
            return protocol.message_deleted_frame(message)
        case events.ReadMarkerMoved():
            user = protocol.user_payload(event.user_id, event.username)
            return protocol.read_frame(
                room_id=event.room_id, user=user, message_id=event.message_id
            )
        case events.MemberAdded():
            user = protocol.user_payload(event.user_id, event.username)
            return protocol.member_added_frame(room_id=event.room_id, user=user, role=event.role)
        case events.RoomUpdated():
            return protocol.room_updated_frame(
                room_id=event.room_id,
                name=event.name,
                seen_by=event.seen_by,
                read_only=event.read_only,
            )
    raise TypeError(f"no frame for {type(event).__name__}")


PUBLISH_TIMEOUT_SECONDS = 5.0  # a stalled Redis must not hold the room's order for ever


def deliveries(event: events.RoomEvent) -> list[list[tuple[str, dict]]]:
    """Each delivery of a domain event, as its copies of (group, layer event): its room's
    group, or, for notifications, each notified user's group on every Redis server. A delivery
    is made when one of its copies is: a server that fails its copy has its listeners closed
    by their watchdog (chat.realtime.liveness), and they recover on reconnecting."""
    if isinstance(event, events.ApiKeyRevoked):  # the account's sockets, whatever their room
        revoked = api_key_revoked_event(event.user_id, event.key_id)
        return [_to_every_copy(event.user_id, revoked)]
    if isinstance(event, events.NotificationsCreated):
        return [
            _to_every_copy(
                notification.user_id,
                user_event(notification.user_id, protocol.notification_frame(notification)),
            )
            for notification in event.notifications
        ]
    return [[(room_group_name(event.room_id), layer_event(event))]]


def _to_every_copy(user_id: int, message: dict) -> list[tuple[str, dict]]:
    return [(group, message) for group in user_group_copies(user_id)]


async def _group_send(sends: list[list[tuple[str, dict]]]) -> None:
    """Send every copy at once; raise the error of a delivery none of whose copies went out."""
    layer = get_channel_layer()
    copies = [copy for delivery in sends for copy in delivery]
    results = iter(
        await asyncio.wait_for(
            asyncio.gather(
                *(layer.group_send(group, message) for group, message in copies),
                return_exceptions=True,
            ),
            PUBLISH_TIMEOUT_SECONDS,
        )
    )
    for delivery in sends:
        errors = [error for _ in delivery if (error := next(results)) is not None]
        if len(errors) == len(delivery):
            raise errors[0]


def publish(event: events.RoomEvent) -> bool:
    """From sync code, after commit: hand the event to every server process of the room (or,
    for notifications, of each notified user)."""
    try:
        async_to_sync(_group_send)(deliveries(event))
    except (*CHANNEL_LAYER_ERRORS, TimeoutError):
        # Stored either way: the layer's watchdog (chat.realtime.liveness) closes every socket of a
        # process that lost it, and clients recover with `after=`.
        logger.exception(
            "could not announce %s to room %s: channel layer unavailable",
            type(event).__name__,
            getattr(event, "room_id", None),
        )
        return False
    except Exception:  # stored either way: a failure here must not look like a failed write
        logger.exception(
            "could not announce %s to room %s",
            type(event).__name__,
            getattr(event, "room_id", None),
        )
        return False
    return True
