"""Who may see a room: the ONE membership rule, used by the WebSocket and the REST API alike."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from enum import StrEnum

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connections
from django.db.models import F, QuerySet
from django.db.models.functions import Coalesce

from chat.domain.models import Membership, Message, Room
from chat.domain.refusals import NotAMember, Refusal, RoomNotFound


class AccessLost(StrEnum):
    """Why an open connection lost its access (the values are the sockets' close reasons)."""

    REMOVED_FROM_ROOM = "removed_from_room"
    USER_INACTIVE = "user_inactive"
    USER_DELETED = "user_deleted"


def accessible_rooms(user) -> QuerySet[Room]:
    """Rooms whose messages and members `user` may see: those it is a member of."""
    if not may_see_rooms(user):
        return Room.objects.none()
    rooms = Room.objects.filter(memberships__user=user)
    scope = key_scope(user)  # API keys
    return rooms if scope is None else rooms.filter(pk__in=scope)


def may_see_rooms(user) -> bool:
    """The part of the rule about the user alone: signed in and active."""
    return bool(user and user.is_authenticated and user.is_active)


def _granted_rooms(pairs: list[tuple[object, uuid.UUID]]) -> dict[tuple, Room]:
    """The rooms of (user, room pk) `pairs` that `accessible_rooms` lets the user into, keyed
    by (user pk, room pk): one query, the same membership join as `accessible_rooms`."""
    users = {user.pk for user, _ in pairs if may_see_rooms(user)}
    rooms = Room.objects.filter(
        pk__in={room_pk for _, room_pk in pairs}, memberships__user__in=users
    ).annotate(
        member_pk=F("memberships__user"),
        # The room's change number now, for connection.established (read before the socket
        # can hear a change: recovery from it may repeat one, never miss one).
        change_seq=Coalesce(F("sequence__change_seq"), 0),
    )
    # The member annotation leaves the instance: other users' sockets may share it.
    return {(room.__dict__.pop("member_pk"), room.pk): room for room in rooms}


def is_member(*, room_id: uuid.UUID, user) -> bool:
    """`user` (active) is a member of the room: what every stored message checks.

    One lookup in the membership's (room, user) unique index, written as the one SQL statement
    it is: the same question asked through the ORM cost ~0.5 ms of CPU per message to build,
    three times the INSERT it guards (docs/performance.md, item 24)."""
    if not may_see_rooms(user) or not in_key_scope(user, room_id):
        return False
    room_field = Membership._meta.get_field("room").target_field
    connection = connections[Membership.objects.db]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT 1 FROM {Membership._meta.db_table} WHERE room_id = %s AND user_id = %s",
            [room_field.get_db_prep_value(room_id, connection), user.pk],
        )
        return cursor.fetchone() is not None


def writer_state(*, room_id: uuid.UUID, user) -> tuple[bool, bool]:
    """(member, room read-only): what every write checks, in the one lookup `is_member` makes
    (the room's row joined by its primary key)."""
    if not may_see_rooms(user) or not in_key_scope(user, room_id):
        return False, False
    room_field = Membership._meta.get_field("room").target_field
    connection = connections[Membership.objects.db]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT r.read_only FROM {Membership._meta.db_table} m"
            f" JOIN {Room._meta.db_table} r ON r.id = m.room_id"
            " WHERE m.room_id = %s AND m.user_id = %s",
            [room_field.get_db_prep_value(room_id, connection), user.pk],
        )
        row = cursor.fetchone()
    return row is not None, bool(row and row[0])


def can_user_access(user, room: Room) -> bool:
    """True when `user` may read and write in `room`: a member; and for a CRM record's room,
    one its policy lets see the record now (the memberships follow the policy whenever the
    CRM reports a change, chat.domain.records; this asks it directly, for a caller that must
    not trust a report that never came)."""
    if not accessible_rooms(user).filter(pk=room.pk).exists():
        return False
    if room.record_type_id is None:
        return True
    from chat.domain.records import record_viewable_by  # records builds on this module

    return record_viewable_by(user, room)


def room_for_connection(*, user, room_id: str) -> tuple[Room | None, Refusal | None]:
    """The room a socket asks for, or the reason it may not have it (room first, then access)."""
    return rooms_for_connections([(user, room_id)])[0]


def rooms_for_connections(
    requests: list[tuple[object, str]],
) -> list[tuple[Room | None, Refusal | None]]:
    """`room_for_connection` for each (user, room id): one query when all are let in, and
    one more to tell "no such room" from "not a member" when some are not."""
    wanted = [(user, _room_pk(room_id)) for user, room_id in requests]
    granted = _granted_rooms([(user, pk) for user, pk in wanted if pk is not None])
    # The key's scope per request, not in `granted` (keyed by user): two keys of one account,
    # in one batch, may reach different rooms.
    admitted = [
        granted.get((user.pk, pk)) if in_key_scope(user, pk) else None for user, pk in wanted
    ]
    refused = {
        pk
        for (_, pk), room in zip(wanted, admitted, strict=True)
        if room is None and pk is not None
    }
    existing = (
        set(Room.objects.filter(pk__in=refused).values_list("pk", flat=True)) if refused else set()
    )
    return [
        _room_or_refusal(room, pk in existing)
        for (_, pk), room in zip(wanted, admitted, strict=True)
    ]


def _room_pk(room_id: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(room_id)
    except ValueError:
        return None


def _room_or_refusal(room: Room | None, exists: bool) -> tuple[Room | None, Refusal | None]:
    if room is not None:
        return room, None
    return None, NotAMember() if exists else RoomNotFound()


# Rooms per query of refused_connections: well under every backend's limit on query
# parameters (SQLite's is 32,766; builds older than 3.32, 999).
ROOMS_PER_QUERY = 900


def refused_connections(
    pairs: set[tuple[int, uuid.UUID]],
) -> dict[tuple[int, uuid.UUID], AccessLost]:
    """Which open connections, as (user pk, room pk), the rule no longer lets in, and why:
    user inactive, deleted, or not a member any more.

    One query per ROOMS_PER_QUERY rooms: the rooms' memberships with their users' `is_active`
    (an index range per room: the cost is the rooms' members, never users x rooms); one more
    only when some connection lost its membership, to say why."""
    rooms = list({room_pk for _, room_pk in pairs})
    members: dict[tuple[int, uuid.UUID], bool] = {}
    for start in range(0, len(rooms), ROOMS_PER_QUERY):
        batch = Membership.objects.filter(room__in=rooms[start : start + ROOMS_PER_QUERY])
        rows = batch.values_list("user_id", "room_id", "user__is_active")
        members.update(((user_pk, room_pk), active) for user_pk, room_pk, active in rows)
    refused = {pair: AccessLost.USER_INACTIVE for pair in pairs if members.get(pair) is False}
    lost = [pair for pair in pairs if pair not in members]
    if lost:
        refused |= _why_memberships_were_lost(lost)
    return refused


def _why_memberships_were_lost(pairs: list[tuple[int, uuid.UUID]]) -> dict[tuple, AccessLost]:
    """Removed from the room, unless the user was deactivated too or deleted (its memberships
    went with it): then what its handshake would say."""
    users = get_user_model().objects.filter(pk__in={user_pk for user_pk, _ in pairs})
    active = dict(users.values_list("pk", "is_active"))
    return {pair: _lost_membership_reason(active.get(pair[0])) for pair in pairs}


def _lost_membership_reason(user_is_active: bool | None) -> AccessLost:
    if user_is_active is None:
        return AccessLost.USER_DELETED
    return AccessLost.REMOVED_FROM_ROOM if user_is_active else AccessLost.USER_INACTIVE


def is_room_admin(user, room: Room) -> bool:
    """Room admins manage membership."""
    return (
        accessible_rooms(user)
        .filter(pk=room.pk, memberships__user=user, memberships__role="admin")
        .exists()
    )


def can_edit_message(user, message: Message, *, now: datetime) -> bool:
    """Authors edit their own messages, within CHAT_EDIT_WINDOW_SECONDS of sending."""
    window = timedelta(seconds=settings.CHAT_EDIT_WINDOW_SECONDS)
    return message.author_id == user.pk and now - message.created_at <= window


def can_delete_message(user, message: Message) -> bool:
    """Authors delete their own messages; room admins delete any message of their room."""
    return message.author_id == user.pk or is_room_admin(user, message.room)


# --- API keys (apikeys) ---------------------------------------------------------------------
# A request or socket authenticated by an API key reaches only the rooms the key was granted,
# among its account's memberships: the key's authentication puts them on the user as
# `api_key_room_ids` (a frozenset of room pks). Any other user has none, and pays one getattr.


def key_scope(user) -> frozenset | None:
    """The rooms `user`'s API key was granted; None when no key limits it."""
    return getattr(user, "api_key_room_ids", None)


def in_key_scope(user, room_id) -> bool:
    """`room_id` is within `user`'s key scope, or no key limits `user`."""
    scope = getattr(user, "api_key_room_ids", None)
    if scope is None:
        return True
    if not isinstance(room_id, uuid.UUID):
        room_id = _room_pk(str(room_id))
    return room_id in scope
