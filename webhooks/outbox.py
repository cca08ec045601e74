"""The recorder: each change a subscription wants becomes a delivery row, in its transaction.

Installed by WebhooksConfig.ready as a chat.domain.events recorder, so a delivery is stored
if and only if its change commits: nothing rolled back is ever sent, and nothing committed is
lost when a process dies before the worker sends it. The body is the socket's frame
(chat.protocol) wrapped with the delivery id, the event and the room.
"""

from __future__ import annotations

import json
import logging
import uuid

from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.utils import timezone

from chat import protocol
from chat.domain import events
from chat.domain.models import Room
from webhooks.models import Event, WebhookDelivery, WebhookSubscription

logger = logging.getLogger(__name__)


def _tables() -> dict[str, str]:
    subscription = WebhookSubscription._meta
    return {
        "room": Room._meta.db_table,
        "subscription": subscription.db_table,
        "room_id": subscription.get_field("room").column,
        "record_type_id": subscription.get_field("record_type").column,
        "content_type": ContentType._meta.db_table,
    }


# The room's active subscriptions (to it, or to its record type), with what the envelope says
# of the room. SQL, not the ORM: it runs for every change of every room, and compiling it
# cost ~1.1 ms of CPU per message on SQLite against ~0.05 ms to run (docs/performance.md).
_SUBSCRIBED = """SELECT {select} FROM {room} r
    JOIN {subscription} s ON s.active = %s
        AND (s.{room_id} = r.id OR s.{record_type_id} = r.record_type_id)
    LEFT JOIN {content_type} ct ON ct.id = r.record_type_id
    WHERE r.id = %s
"""


def _subscribed(room_id: uuid.UUID, select: str, suffix: str = "") -> list[tuple]:
    sql = _SUBSCRIBED.format(select=select, **_tables()) + suffix
    with connection.cursor() as cursor:
        cursor.execute(sql, [True, Room._meta.pk.get_db_prep_value(room_id, connection)])
        return cursor.fetchall()


def room_has_subscriptions(room_id: uuid.UUID) -> bool:
    """Whether a change of the room must be recorded: one indexed query, no rows for most."""
    return bool(_subscribed(room_id, "1", " LIMIT 1"))


def event_data(event: events.RoomEvent) -> tuple[str, dict] | None:
    """(event name, the socket frame's JSON) of a change subscriptions can be told of."""
    match event:
        case events.MessageCreated(message=message):
            return Event.MESSAGE_CREATED, protocol.message_payload(message)
        case events.MessageEdited(message=message):
            return Event.MESSAGE_EDITED, json.loads(protocol.message_updated_frame(message))
        case events.MessageDeleted(message=message):
            return Event.MESSAGE_DELETED, json.loads(protocol.message_deleted_frame(message))
        case events.MemberAdded():
            user = protocol.user_payload(event.user_id, event.username)
            frame = protocol.member_added_frame(room_id=event.room_id, user=user, role=event.role)
            return Event.MEMBER_ADDED, json.loads(frame)
        case events.MemberRemoved(reason=events.REMOVED_FROM_ROOM):
            frame = protocol.member_removed_frame(room_id=event.room_id, user_id=event.user_id)
            return Event.MEMBER_REMOVED, json.loads(frame)
    return None  # reactions, read markers, typing...: not webhook events (yet)


def record(event: events.RoomEvent) -> None:
    """The recorder: a delivery for each active subscription that wants this event."""
    described = event_data(event)
    if described is None:  # before any query: most events cost nothing here
        return
    name, data = described
    rows = _subscribed(event.room_id, "s.id, s.events, r.name, ct.app_label, ct.model, r.record_id")
    wanting = [row[0] for row in rows if name in _json(row[1])]
    if not wanting:
        return
    if not connection.in_atomic_block:  # the change committed already: a crash now loses it
        logger.warning("%s of room %s recorded outside a transaction", name, event.room_id)
    now = timezone.now()
    envelope = {
        "event": name,
        "created_at": protocol.timestamp(now),
        "room": _room(event.room_id, *rows[0][2:]),
    }
    WebhookDelivery.objects.bulk_create(
        [_delivery(subscription_id, name, envelope, data, now) for subscription_id in wanting]
    )


def _json(value) -> list:
    return json.loads(value) if isinstance(value, str) else value  # SQLite: text; PG: jsonb


def _delivery(subscription_id: int, name: str, envelope: dict, data: dict, now):
    delivery_id = uuid.uuid4()
    body = protocol.dumps({"id": str(delivery_id), **envelope, "data": data})
    return WebhookDelivery(
        delivery_id=delivery_id,
        subscription_id=subscription_id,
        event=name,
        body=body,
        next_attempt_at=now,
    )


def _room(room_id: uuid.UUID, name, app_label, model, record_id) -> dict:
    """The room, with the CRM record it is bound to (what a record type's subscriber needs)."""
    return {
        "id": str(room_id),
        "name": name,
        "record_type": f"{app_label}.{model}" if model else None,
        "record_id": record_id,
    }
