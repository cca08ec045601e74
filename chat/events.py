"""Channel-layer group names and the events the REST side sends to open sockets."""

from __future__ import annotations

import logging
import uuid

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

PUBLIC_ROOM_GROUP = "chat.public.teste"


def room_group_name(room_id: uuid.UUID) -> str:
    # A hex UUID can never equal the public group's name, so the public room cannot reach it.
    return f"chat.room.{room_id.hex}"


def broadcast_event(frame: str) -> dict:
    """A message for every socket of a group; `frame` is serialized once, not per receiver."""
    return {"type": "chat.broadcast", "frame": frame}


def member_removed_event(user_id: int, reason: str = "removed_from_room") -> dict:
    return {"type": "member.removed", "user_id": user_id, "reason": reason}


def notify_member_removed(room_id: uuid.UUID, user_id: int) -> None:
    """Close the removed member's sockets to the room, on every server process."""
    notify_member_removed_from([room_id], user_id)


def notify_member_removed_from(
    room_ids: list[uuid.UUID], user_id: int, *, reason: str = "removed_from_room"
) -> None:
    """Close a user's sockets to these rooms with `reason`, on every server process."""
    try:
        layer = get_channel_layer()
        for room_id in room_ids:
            async_to_sync(layer.group_send)(
                room_group_name(room_id), member_removed_event(user_id, str(reason))
            )
    except (OSError, RedisError):
        # The membership is gone either way; when the layer is down the liveness watchdog
        # closes every socket, and the removed member can no longer reconnect.
        logger.exception("could not close sockets: rooms=%s user=%s", room_ids, user_id)


def broadcast_to_room(room_id: uuid.UUID, frame: str) -> None:
    """From sync code (REST views): send a pre-rendered frame to every socket of the room."""
    try:
        async_to_sync(get_channel_layer().group_send)(
            room_group_name(room_id), broadcast_event(frame)
        )
    except (OSError, RedisError):
        logger.exception("could not broadcast to room %s: channel layer unavailable", room_id)
