"""What the chat keeps, and for how long: rooms' retention, and a user's data (GDPR).

- `retention_apply` (`manage.py apply_chat_retention`, daily): in every room with
  `retention_days`, messages older than that become tombstones.
- `user_export` (`manage.py export_chat_user`): everything of a user's, for an access request.
- `user_erase` (`manage.py erase_chat_user`): a user's account anonymized and their messages
  tombstoned, for an erasure request.

Messages are never deleted, only tombstoned as `message_delete` leaves them (empty text,
`deleted_at`, no mentions, no attachments): ids stay gapless for `after=`, and threads and
other people's replies keep their shape. What the text leaves behind goes with it: reactions,
notifications, the audit trail's old texts (MessageRevision), the files and their rows.
Each tombstoned message takes a change number of its own, so `changes/?after=` tells clients;
nothing is announced live, message by message: a retention run may tombstone thousands of
messages that nobody has on screen, and a frame each would flood every socket of the room.
Clients see them on their next `changes/` recovery (every reconnect).

Work goes room by room, in batches of BATCH_SIZE messages, each batch under the room's order
(chat.domain.ordering) and in one transaction, so other writers of the room wait one batch at
most. Files are deleted before their batch's transaction, outside the order (a storage's
round trips must not hold the room): if the transaction then fails, the next run finds the
batch again and finishes it (deleting a file that is gone already is no error). Logs carry
counts and ids, never texts or names.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import (
    BigIntegerField,
    Case,
    DateTimeField,
    Exists,
    OuterRef,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from chat.domain import services, statements
from chat.domain.models import (
    Attachment,
    Membership,
    Message,
    MessageRevision,
    Notification,
    NotificationSettings,
    Reaction,
    Room,
)
from chat.domain.ordering import room_order

logger = logging.getLogger(__name__)

BATCH_SIZE = 200  # messages per transaction: a batch is what other writers of a room wait for
EXPORT_FORMAT = "chat-user-export/1"
CHUNK_SIZE = 1000  # rows an export reads at a time


@dataclass(slots=True)
class Purged:
    """What a run removed (counts only: never what it was)."""

    messages: int = 0  # live messages that became tombstones
    tombstones: int = 0  # tombstones (deleted before) whose leftovers went
    attachments: int = 0  # files (rows; their thumbnails too)
    reactions: int = 0
    notifications: int = 0
    revisions: int = 0  # audit entries, with the old texts they kept

    def add(self, other: Purged) -> None:
        for field in fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))

    def __bool__(self) -> bool:
        return any(getattr(self, field.name) for field in fields(self))

    def __str__(self) -> str:
        return ", ".join(f"{getattr(self, field.name)} {field.name}" for field in fields(self))


# --- Tombstones, the one way both retention and erasure forget a message.


def _leftovers() -> Q:
    """A message with something left to forget: not a tombstone yet, or one still carrying
    a text, a system message's facts, reactions, notifications, old texts or files (a
    tombstone `message_delete` left keeps its audit trail and reactions)."""
    of_message = OuterRef("pk")
    return (
        Q(deleted_at__isnull=True)
        | ~Q(text="")
        | Q(data__isnull=False)
        | Q(Exists(Reaction.objects.filter(message=of_message)))
        | Q(Exists(Notification.objects.filter(message=of_message)))
        | Q(Exists(MessageRevision.objects.filter(message=of_message)))
        | Q(Exists(Attachment.objects.filter(message=of_message)))
    )


def _tombstone_all(room_id: uuid.UUID, messages: QuerySet, now: datetime) -> Purged:
    """Tombstone `messages` (of one room) that have anything left, in batches, oldest first."""
    purged = Purged()
    candidates = messages.filter(_leftovers()).order_by("id").values_list("id", flat=True)
    after = 0
    while ids := list(candidates.filter(id__gt=after)[:BATCH_SIZE]):
        purged.add(_tombstone(room_id, ids, now))
        after = ids[-1]
    return purged


def _tombstone(room_id: uuid.UUID, ids: list[int], now: datetime) -> Purged:
    files = list(Attachment.objects.filter(message_id__in=ids))
    _files_delete(files)  # before, and outside, the room's order: see the module's docstring
    with room_order(room_id), transaction.atomic():
        batch = Message.objects.filter(pk__in=ids)
        live = batch.filter(deleted_at__isnull=True).count()
        purged = Purged(
            messages=live,
            tombstones=len(ids) - live,
            attachments=Attachment.objects.filter(message_id__in=ids).delete()[0],
            reactions=Reaction.objects.filter(message_id__in=ids).delete()[0],
            notifications=Notification.objects.filter(message_id__in=ids).delete()[0],
            revisions=MessageRevision.objects.filter(message_id__in=ids).delete()[0],
        )
        batch.update(
            text="",
            mentions=[],
            attachments=[],
            data=None,
            deleted_at=Coalesce("deleted_at", Value(now, output_field=DateTimeField())),
            change_seq=_change_seqs(room_id, ids),
        )
    return purged


def _change_seqs(room_id: uuid.UUID, ids: list[int]) -> Case:
    """A new change number for each message of `ids`, in id order (numbers must differ:
    `changes/?after=` pages by them)."""
    first = statements.change_seqs_take(room_id=room_id, count=len(ids))
    return Case(
        *(When(pk=message_id, then=Value(first + n)) for n, message_id in enumerate(ids)),
        output_field=BigIntegerField(),
    )


def _files_delete(attachments: Iterable[Attachment]) -> None:
    """Delete the stored files (and thumbnails) of `attachments` through the storage API;
    their rows stay for the caller to delete. A storage error stops the run: the rows then
    still say what is left to delete."""
    for attachment in attachments:
        for stored in (attachment.file, attachment.thumbnail):
            if stored:
                stored.delete(save=False)


# --- Retention.


@dataclass(frozen=True, slots=True)
class RoomRetention:
    room_id: uuid.UUID
    retention_days: int
    purged: Purged


def retention_apply(*, now: datetime | None = None) -> list[RoomRetention]:
    """In every room with `retention_days`, tombstone the messages created longer ago than
    that (see the module's docstring); returns what went, room by room. Running it again
    changes nothing: tombstones with nothing left are not touched."""
    now = now or timezone.now()
    done = []
    rooms = Room.objects.filter(retention_days__isnull=False).order_by("pk")
    for room_id, days in rooms.values_list("pk", "retention_days"):
        expired = Message.objects.filter(room_id=room_id, created_at__lt=now - timedelta(days=days))
        purged = _tombstone_all(room_id, expired, now)
        logger.info("retention of room %s (%s days): %s", room_id, days, purged)
        done.append(RoomRetention(room_id, days, purged))
    return done


# --- A user's data: export.


def user_export(user, *, copy_file: Callable[[Attachment], str | None] | None = None) -> dict:
    """Everything the chat holds of `user` (a GDPR access request), as a JSON-ready dict
    whose lists are iterators, read CHUNK_SIZE rows at a time: write them out as they come
    (docs/protocol.md, "Export of a user's data"). `copy_file(attachment)`, if given, copies
    each of the user's files somewhere and returns where (the export's `file`)."""
    return {
        "format": EXPORT_FORMAT,
        "exported_at": timezone.now(),
        "user": _user_fields(user),
        "notification_settings": _notification_settings(user),
        "memberships": _memberships(user),
        "messages": _messages(user),
        "revisions": _revisions(user),
        "reactions": _reactions(user),
        "attachments": _attachments(user, copy_file),
        "notifications": _notifications(user),
    }


def _rows(queryset: QuerySet) -> Iterator[dict]:
    return queryset.iterator(chunk_size=CHUNK_SIZE)


def _user_fields(user) -> dict:
    names = ("id", "username", "first_name", "last_name", "email", "date_joined", "last_login")
    found = {name: getattr(user, name) for name in names if hasattr(user, name)}
    return {**found, "is_active": user.is_active}


def _notification_settings(user) -> dict:
    stored = NotificationSettings.objects.filter(user=user).first()
    return {"email_digests": stored.email_digests if stored else True}


def _memberships(user) -> Iterator[dict]:
    rows = Membership.objects.filter(user=user).order_by("joined_at", "pk")
    columns = ("room_id", "room__name", "room__type", "role", "joined_at", "last_read_message_id")
    for row in _rows(rows.values(*columns)):
        yield {
            "room": {"id": row["room_id"], "name": row["room__name"], "type": row["room__type"]},
            "role": row["role"],
            "joined_at": row["joined_at"],
            "last_read_message_id": row["last_read_message_id"],
        }


_MESSAGE_COLUMNS = (
    "id",
    "room_id",
    "room__name",
    "text",
    "created_at",
    "edited_at",
    "deleted_at",
    "reply_to_id",
    "kind",
    "attachments",
)


def _messages(user) -> Iterator[dict]:
    rows = Message.objects.filter(author=user).order_by("id").values(*_MESSAGE_COLUMNS)
    for row in _rows(rows):
        yield {
            "id": row["id"],
            "room": {"id": row["room_id"], "name": row["room__name"]},
            "text": row["text"],
            "created_at": row["created_at"],
            "edited_at": row["edited_at"],
            "deleted": row["deleted_at"] is not None,
            "reply_to": row["reply_to_id"],
            "kind": row["kind"],
            "attachments": row["attachments"],
        }


def _revisions(user) -> Iterator[dict]:
    """The old texts of the user's own messages (their edits, and deletes by anyone); not
    who else deleted one, nor other people's texts the user deleted as a room admin."""
    rows = MessageRevision.objects.filter(message__author=user).order_by("id")
    yield from _rows(rows.values("message_id", "action", "previous_text", "created_at"))


def _reactions(user) -> Iterator[dict]:
    rows = Reaction.objects.filter(user=user).order_by("id")
    for row in _rows(rows.values("message_id", "message__room_id", "emoji", "created_at")):
        yield {
            "message_id": row["message_id"],
            "room_id": row["message__room_id"],
            "emoji": row["emoji"],
            "created_at": row["created_at"],
        }


def _attachments(user, copy_file) -> Iterator[dict]:
    for attachment in _rows(Attachment.objects.filter(uploader=user).order_by("id")):
        item = {
            "id": attachment.pk,
            "room_id": attachment.room_id,
            "message_id": attachment.message_id,
            "name": attachment.name,
            "content_type": attachment.content_type,
            "size": attachment.size,
            "created_at": attachment.created_at,
        }
        if copy_file is not None:
            item["file"] = copy_file(attachment)
        yield item


def _notifications(user) -> Iterator[dict]:
    rows = Notification.objects.filter(user=user).order_by("id")
    yield from _rows(
        rows.values("id", "kind", "room_id", "message_id", "created_at", "read_at", "emailed_at")
    )


# --- A user's data: erasure.


def pseudonym(user) -> str:
    """The name an erased user's account keeps: stable, and nothing of the person."""
    return f"deleted-user-{user.pk}"


def user_erase(*, user, now: datetime | None = None) -> Purged:
    """Erase what the chat holds of `user` (a GDPR erasure request) without breaking rooms;
    returns what went. Running it again changes nothing.

    In this order, so nothing new can come in behind it: the account is anonymized and
    deactivated (its sockets close, its tokens stop working), it leaves its rooms, then its
    messages become tombstones (their ids, threads and other people's replies stay), its
    reactions, notifications, settings and unsent uploads go, and the audit trail no longer
    names it. Kept: the account's row under `pseudonym(user)` (messages keep an author, so
    rooms page as before), its membership of direct rooms (a direct room has its two members
    for good; the other person keeps the conversation, its name now the pseudonym's), and
    other people's messages as they wrote them."""
    now = now or timezone.now()
    _account_anonymize(user)
    _rooms_leave(user)
    purged = Purged()
    mine = Message.objects.filter(author=user)
    for room_id in _rooms_with_leftovers(mine):
        purged.add(_tombstone_all(room_id, mine.filter(room_id=room_id), now))
    purged.reactions += _reactions_remove(user)
    purged.attachments += _unsent_uploads_delete(user)
    purged.notifications += Notification.objects.filter(user=user).delete()[0]
    NotificationSettings.objects.filter(user=user).delete()
    MessageRevision.objects.filter(actor=user).update(actor=None)
    logger.info("erased the chat data of user %s: %s", user.pk, purged)
    return purged


def _account_anonymize(user) -> None:
    model = get_user_model()
    setattr(user, model.USERNAME_FIELD, pseudonym(user))
    for name in ("first_name", "last_name", model.get_email_field_name()):
        if hasattr(user, name):
            setattr(user, name, "")
    user.set_unusable_password()
    user.is_active = False
    for name in ("is_staff", "is_superuser"):
        if hasattr(user, name):
            setattr(user, name, False)
    if hasattr(user, "last_login"):
        user.last_login = None
    user.save()  # inactive: chat.domain.signals closes its sockets in every room
    if hasattr(user, "groups"):
        user.groups.clear()
        user.user_permissions.clear()


def _rooms_leave(user) -> None:
    """Leave every room through the services (members hear `member.removed`, its sockets
    close) but direct rooms, which are renamed after their members as they are now."""
    memberships = Membership.objects.filter(user=user).select_related("room")
    for membership in list(memberships):
        room = membership.room
        if room.type == Room.Type.DIRECT:
            _direct_room_renamed(room)
        else:
            services.membership_remove(room=room, user=user)


def _direct_room_renamed(room: Room) -> None:
    # As direct_room_get_or_create names it: its members by id.
    members = Membership.objects.filter(room=room).order_by("user_id")
    name = " & ".join(members.values_list("user__username", flat=True))
    if name and name != room.name:
        services.room_rename(room=room, name=name)


def _rooms_with_leftovers(messages: QuerySet) -> list[uuid.UUID]:
    rooms = messages.filter(_leftovers()).order_by().values_list("room_id", flat=True)
    return sorted(set(rooms), key=str)


def _reactions_remove(user) -> int:
    """The user's reactions on other people's messages, room by room in batches; each
    message whose reactions changed takes a change number."""
    removed = 0
    by_room: dict[uuid.UUID, set[int]] = {}
    reacted = Reaction.objects.filter(user=user).values_list("message__room_id", "message_id")
    for room_id, message_id in reacted.order_by():  # several emoji on a message: one change
        by_room.setdefault(room_id, set()).add(message_id)
    for room_id, reacted_ids in by_room.items():
        message_ids = sorted(reacted_ids)
        for start in range(0, len(message_ids), BATCH_SIZE):
            ids = message_ids[start : start + BATCH_SIZE]
            with room_order(room_id), transaction.atomic():
                removed += Reaction.objects.filter(user=user, message_id__in=ids).delete()[0]
                Message.objects.filter(pk__in=ids).update(change_seq=_change_seqs(room_id, ids))
    return removed


def _unsent_uploads_delete(user) -> int:
    """Uploads no message took (a message's files went with its tombstone)."""
    unsent = list(Attachment.objects.filter(uploader=user, message__isnull=True))
    _files_delete(unsent)
    Attachment.objects.filter(pk__in=[attachment.pk for attachment in unsent]).delete()
    return len(unsent)
