"""Writes: every change to rooms, memberships and messages, whoever asks for it.

Each operation validates, takes the room's order (chat.domain.ordering), stores, and announces what
changed once it committed (chat.domain.events): the WebSocket consumer, the REST views, the admin,
management commands and other CRM code all get the same guarantees by calling it. Refusals
are chat.domain.refusals exceptions. `by`: the user asking, whose rights are checked; None for the
system itself (the admin, a command, other CRM code), which may do anything the rules allow.
"""

from __future__ import annotations

from dataclasses import dataclass

import emoji as emoji_data
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from chat.domain import events, refusals, statements
from chat.domain.access import (
    accessible_rooms,
    can_delete_message,
    can_edit_message,
    is_member,
    is_room_admin,
    writer_state,
)
from chat.domain.attachments import attachments_claim
from chat.domain.models import (
    RETENTION_DAYS_MAX,
    Membership,
    Message,
    MessageRevision,
    Room,
)
from chat.domain.notifications import (
    may_mention,
    mentioned_user_ids,
    notifications_for_edit,
    notifications_for_message,
    notifications_forget,
)
from chat.domain.ordering import room_order
from chat.domain.selectors import summaries_of_rows
from chat.observability import metrics

DIRECT_ROOMS_ONLY_FROM_DIRECT = (
    "direct rooms are opened with POST /api/chat/direct/ {user_id}; create a group instead"
)
DIRECT_MEMBERS_ARE_FIXED = "a direct room's two members never change; create a group instead"
RECORD_MEMBERS_FOLLOW_THE_RECORD = (
    "the members of a record's room are whoever may see the record; change that in the CRM"
)


@dataclass(frozen=True, slots=True)
class MessageCreateResult:
    message: Message
    created: bool  # False: a retry of an already stored client_id, announced before
    announcement: events.Announcement | None = None  # None when nothing new was announced


@dataclass(frozen=True, slots=True)
class Change:
    """What a change of a room left: its value (the message, the marker), and its announcement
    (None when nothing changed, so nothing was announced)."""

    value: object
    announcement: events.Announcement | None


def message_text_check(text: str) -> str:
    """The rule for a message's text, on every transport: not blank, not too long."""
    if not text.strip():
        raise refusals.EmptyMessage()
    limit = settings.CHAT_MAX_MESSAGE_LENGTH
    if len(text) > limit:
        raise refusals.MessageTooLong(f"message is longer than {limit} characters")
    return text


def message_create(
    *,
    room: Room,
    author,
    text: str,
    client_id: str | None = None,
    reply_to: int | None = None,
    attachments: list[int] | tuple[int, ...] = (),
) -> MessageCreateResult:
    """Store a message by a member and announce it; a retry of a client_id returns the first.

    With `reply_to`, the message is a reply in that message's thread (a reply to a reply joins
    the same thread): the root's `reply_count` and `last_reply_at` change with it, announced as
    the root's update. Mentions are resolved and notifications stored with the message
    (chat.domain.notifications)."""
    message_text_check(text)
    with room_order(room.pk):
        _writer_check(room=room, user=author)  # inside the order: no removal can come between
        plain = (
            reply_to is None
            and not attachments
            and room.type != Room.Type.DIRECT
            and not may_mention(text)
        )
        if client_id is None and plain:
            # One INSERT is atomic by itself, and the room's order is held: no transaction,
            # unless a recorder (a webhook's outbox) must commit its rows with the message.
            with events.recorded_atomically(room.pk):
                with metrics.database_write.time():  # the INSERT alone: _created publishes
                    message = Message.objects.create(room=room, author=author, text=text)
                return _created(message)
        with transaction.atomic():
            stored = _stored_retry(room, author, client_id)
            if stored is not None:  # before any check: what was stored stays the answer
                return MessageCreateResult(stored, created=False)
            target = None if reply_to is None else _reply_target(room=room, message_id=reply_to)
            root = _thread_root(target)
            mentions = mentioned_user_ids(room=room, author=author, text=text) if not plain else []
            with metrics.database_write.time():
                message, created = _message_create_once(
                    room, author, text, client_id, root=root, mentions=mentions
                )
            if not created:
                return MessageCreateResult(message, created=False)
            if attachments:
                _attachments_carried(room, author, list(attachments), message)
            if root is not None:
                _thread_reply_count(room=room, root=root, reply=message)
            result = _created(message, root)
            notifications_for_message(message=message, room=room, replied_to=target, root=root)
            return result


def _created(message: Message, root: Message | None = None) -> MessageCreateResult:
    # Once committed: a transaction rolled back later (an attachment, a caller's) stored nothing.
    transaction.on_commit(metrics.messages_stored.inc)
    announcement = events.announce_on_commit(events.MessageCreated(message.room_id, message))
    if root is not None:
        events.announce_on_commit(events.ThreadUpdated(root.room_id, root))
    return MessageCreateResult(message, created=True, announcement=announcement)


def _message_create_once(
    room: Room, author, text: str, client_id: str | None, *, root, mentions
) -> tuple[Message, bool]:
    stored = Message.objects.select_related("author")
    try:
        with transaction.atomic():
            message = Message.objects.create(
                room=room,
                author=author,
                text=text,
                client_id=client_id,
                reply_to=root,
                mentions=mentions,
            )
    except IntegrityError:  # stored meanwhile by a caller outside the room's order
        if client_id is None:
            raise
        return stored.get(room=room, author=author, client_id=client_id), False
    return message, True


def _attachments_carried(room: Room, author, ids: list[int], message: Message) -> None:
    if len(ids) > settings.CHAT_MAX_ATTACHMENTS_PER_MESSAGE:
        raise refusals.AttachmentNotUsable(
            f"a message carries at most {settings.CHAT_MAX_ATTACHMENTS_PER_MESSAGE} files"
        )
    message.attachments = attachments_claim(room=room, author=author, ids=ids, message=message)
    message.save(update_fields=["attachments"])


def _stored_retry(room: Room, author, client_id: str | None) -> Message | None:
    if client_id is None:
        return None
    stored = Message.objects.select_related("author")
    return stored.filter(room=room, author=author, client_id=client_id).first()


def _reply_target(*, room: Room, message_id: int) -> Message:
    """The message a reply answers: of this room, not deleted."""
    target = (
        Message.objects.filter(room=room, pk=message_id, deleted_at__isnull=True)
        .only("id", "reply_to_id", "author_id")
        .first()
    )
    if target is None:
        raise refusals.ReplyNotInRoom()
    return target


def _thread_root(target: Message | None) -> Message | None:
    """The root of the thread a reply to `target` joins (a reply to a reply joins its root's),
    its row locked for the count."""
    if target is None:
        return None
    rows = Message.objects.select_for_update(of=("self",)).select_related("author")
    root = rows.get(pk=target.reply_to_id or target.pk)
    if root.deleted_at is not None:  # a deleted thread takes no new replies
        raise refusals.ReplyNotInRoom()
    return root


def _thread_reply_count(*, room: Room, root: Message, reply: Message) -> None:
    root.reply_count += 1
    root.last_reply_at = reply.created_at
    root.change_seq = _change_seq_take(room)
    root.save(update_fields=["reply_count", "last_reply_at", "change_seq"])


def _change_seq_take(room: Room) -> int:
    """The room's next change number, for a change of a stored message: taken inside the room's
    order and the change's transaction, so numbers commit in increasing order, as ids do."""
    return statements.change_seq_take(room_id=room.pk)


def _writer_check(*, room: Room, user) -> None:
    """A member, in a room open to writing (not a closed record's)."""
    member, read_only = writer_state(room_id=room.pk, user=user)
    if not member:
        raise refusals.NotAMember()
    if read_only:
        raise refusals.RoomReadOnly()


def _member_check(*, room: Room, user) -> None:
    if not is_member(room_id=room.pk, user=user):
        raise refusals.NotAMember()


def _admin_check(*, room: Room, by) -> None:
    if by is not None and not is_room_admin(by, room):
        raise refusals.NotRoomAdmin()


def _message_for_change(*, room: Room, message_id: int) -> Message:
    message = (
        Message.objects.select_for_update(of=("self",))  # the message's row, not the room's
        .select_related("author", "room")
        .filter(room=room, pk=message_id, deleted_at__isnull=True)
        .first()
    )
    if message is None:
        raise refusals.MessageNotFound()
    return message


def message_edit(*, room: Room, message_id: int, editor, text: str) -> Change:
    """Replace a message's text (its author, a member, within the edit window); the old text
    is audited. The Change's value is the edited message."""
    message_text_check(text)
    now = timezone.now()
    with room_order(room.pk), transaction.atomic():
        _writer_check(room=room, user=editor)
        message = _message_for_change(room=room, message_id=message_id)
        if message.author_id != editor.pk:
            raise refusals.NotAllowed("only the author can edit a message")
        if not can_edit_message(editor, message, now=now):
            raise refusals.EditWindowExpired()
        _revision_add(message, actor=editor, action=MessageRevision.Action.EDIT)
        mentioned_before = message.mentions
        message.text, message.edited_at = text, now
        message.mentions = mentioned_user_ids(room=room, author=editor, text=text)
        message.change_seq = _change_seq_take(room)
        message.save(update_fields=["text", "edited_at", "mentions", "change_seq"])
        notifications_for_edit(message=message, room=room, before=mentioned_before)
        announcement = events.announce_on_commit(events.MessageEdited(room.pk, message))
    return Change(message, announcement)


def message_delete(*, room: Room, message_id: int, actor) -> Change:
    """Turn a message into a tombstone (its author or a room admin, a member); the text is
    audited. The Change's value is the tombstone."""
    with room_order(room.pk), transaction.atomic():
        _member_check(room=room, user=actor)
        message = _message_for_change(room=room, message_id=message_id)
        if not can_delete_message(actor, message):
            raise refusals.NotAllowed("only the author or a room admin can delete a message")
        _revision_add(message, actor=actor, action=MessageRevision.Action.DELETE)
        message.text, message.deleted_at, message.mentions = "", timezone.now(), []
        message.attachments = []  # no longer served (chat.domain.attachments)
        message.change_seq = _change_seq_take(room)
        message.save(update_fields=["text", "deleted_at", "mentions", "attachments", "change_seq"])
        announcement = events.announce_on_commit(events.MessageDeleted(room.pk, message))
    return Change(message, announcement)


def _revision_add(message: Message, *, actor, action: str) -> None:
    MessageRevision.objects.create(
        message=message, actor=actor, action=action, previous_text=message.text
    )


def reaction_add(*, room: Room, message_id: int, user, emoji: str) -> Change:
    """The member's `emoji` on a message (once: adding it again changes nothing). The
    Change's value is the message's reactions (chat.domain.selectors.ReactionSummary)."""
    return _reactions_change(room, message_id, user, emoji, add=True)


def reaction_remove(*, room: Room, message_id: int, user, emoji: str) -> Change:
    """Take the member's `emoji` off a message (removing one that is not there changes
    nothing)."""
    return _reactions_change(room, message_id, user, emoji, add=False)


def emoji_check(emoji: object) -> str:
    """The rule for a reaction: exactly one emoji of Unicode's emoji set (the `emoji` package's
    data: skin tones, flags, keycaps and ZWJ sequences such as 👨‍👩‍👧 included), stored in its
    fully-qualified form, so "❤" and "❤️" are one reaction. A lone component (a skin tone) is
    not an emoji to react with."""
    if not isinstance(emoji, str) or not emoji_data.is_emoji(emoji):
        raise refusals.InvalidEmoji()
    qualified = emoji_data.emojize(emoji_data.demojize(emoji))
    data = emoji_data.EMOJI_DATA.get(qualified)
    if data is None or data["status"] == emoji_data.STATUS["component"]:
        raise refusals.InvalidEmoji()
    return qualified


def _reactions_change(room: Room, message_id: int, user, emoji: str, *, add: bool) -> Change:
    # In SQL statements (chat.domain.statements): through the ORM this cost three messages.
    emoji = emoji_check(emoji)
    mine = {"message_id": message_id, "user_id": user.pk, "emoji": emoji}
    with room_order(room.pk), transaction.atomic():
        _writer_check(room=room, user=user)
        if not statements.message_lock(room_id=room.pk, message_id=message_id):
            raise refusals.MessageNotFound()
        rows = statements.reaction_rows(message_id=message_id)
        if ((emoji, user.pk) in rows) == add:  # there already, or not there to remove
            return Change(summaries_of_rows(rows), None)
        if add:
            _distinct_emoji_check(rows, emoji)
            statements.reaction_insert(**mine)
            rows.append((emoji, user.pk))  # the newest: summaries keep first-use order
        else:
            statements.reaction_delete(**mine)
            rows.remove((emoji, user.pk))
        change_seq = _change_seq_take(room)
        statements.message_change_seq_set(message_id=message_id, change_seq=change_seq)
        reactions = summaries_of_rows(rows)
        announcement = events.announce_on_commit(
            events.ReactionsChanged(room.pk, message_id, change_seq, tuple(reactions))
        )
    return Change(reactions, announcement)


def _distinct_emoji_check(rows: list[tuple[str, int]], emoji: str) -> None:
    used = {used_emoji for used_emoji, _ in rows}
    limit = settings.CHAT_MAX_EMOJI_PER_MESSAGE
    if emoji not in used and len(used) >= limit:
        raise refusals.TooManyReactions(f"a message takes at most {limit} different emoji")


def read_marker_set(*, room: Room, user, message_id: int) -> Change:
    """Move the user's read marker forward to `message_id`; the Change's value is the marker
    now stored. Only a marker that moves is written and announced: repeating a `read` costs
    one read."""
    with room_order(room.pk):
        moved = statements.read_marker_move(room_id=room.pk, user_id=user.pk, message_id=message_id)
        if moved:
            shared = statements.room_seen_by(room_id=room.pk)
            announcement = events.announce_on_commit(
                events.ReadMarkerMoved(room.pk, user.pk, user.username, message_id, shared)
            )
            return Change(message_id, announcement)
    if not Message.objects.filter(room=room, pk=message_id).exists():
        raise refusals.MessageNotFound()
    marker = (
        Membership.objects.filter(room=room, user=user)
        .values_list("last_read_message_id", flat=True)
        .first()
    )
    if marker is None:
        raise refusals.NotAMember()
    return Change(marker, None)


def seen_by_list(*, room: Room, message_id: int) -> list:
    """The members (the author aside) whose read marker is at or past the message, by name;
    refused where the room keeps read markers private."""
    if not Room.objects.filter(pk=room.pk, seen_by=True).exists():
        raise refusals.NotAllowed("this room does not share who has seen a message")
    message = Message.objects.filter(room=room, pk=message_id).only("author_id").first()
    if message is None:
        raise refusals.MessageNotFound()
    readers = Membership.objects.filter(room=room, last_read_message_id__gte=message_id)
    return list(
        get_user_model()
        .objects.filter(pk__in=readers.values("user_id"))
        .exclude(pk=message.author_id)
        .order_by("username")
    )


def room_create(*, name: str, type: str = Room.Type.GROUP, created_by) -> Room:
    """Create a room; its creator becomes its admin member. Direct rooms come only from
    direct_room_get_or_create."""
    if type == Room.Type.DIRECT:
        raise refusals.InvalidRequest(DIRECT_ROOMS_ONLY_FROM_DIRECT)
    with transaction.atomic():
        room = Room.objects.create(name=name, type=type, created_by=created_by)
        Membership.objects.create(room=room, user=created_by, role=Membership.Role.ADMIN)
    return room


def room_rename(*, room: Room, name: str, by=None) -> Room:
    """Give the room a new name (room admins); members get `room.updated`."""
    name = name.strip()
    if not name:
        raise refusals.InvalidRequest("a room needs a name")
    return _room_update(room, {"name": name}, by=by)


def room_seen_by_set(*, room: Room, enabled: bool, by=None) -> Room:
    """Whether members see each other's read markers (room admins); members get
    `room.updated`. Off: `read` frames reach only the reader's own sockets, and nobody can list
    who has seen a message."""
    return _room_update(room, {"seen_by": enabled}, by=by)


ROOM_SETTINGS = frozenset({"seen_by", "retention_days"})


def room_settings_set(*, room: Room, changes: dict, by=None) -> Room:
    """Change some of a room's settings at once (room admins): `seen_by` (room_seen_by_set)
    and `retention_days` (messages older than that many days become tombstones,
    chat.domain.retention; None keeps them forever). Members get `room.updated`; no change
    asked: nothing is stored or announced."""
    unknown = set(changes) - ROOM_SETTINGS
    if unknown:
        raise refusals.InvalidRequest(f"no such room setting: {', '.join(sorted(unknown))}")
    if "retention_days" in changes:
        retention_days_check(changes["retention_days"])
    if not changes:
        _admin_check(room=room, by=by)
        return room
    return _room_update(room, changes, by=by)


def retention_days_check(days: int | None) -> None:
    """None (forever) or a whole number of days, 1 to RETENTION_DAYS_MAX."""
    valid = days is None or (
        isinstance(days, int) and not isinstance(days, bool) and 1 <= days <= RETENTION_DAYS_MAX
    )
    if not valid:
        raise refusals.InvalidRequest(
            f"retention_days: null (forever) or 1 to {RETENTION_DAYS_MAX} days"
        )


def room_read_only_set(*, room: Room, read_only: bool) -> Room:
    """Close or reopen a room to writing (by the system: its CRM record closed or reopened)."""
    return _room_update(room, {"read_only": read_only}, by=None)


def _room_update(room: Room, fields: dict, *, by) -> Room:
    with room_order(room.pk), transaction.atomic():
        _admin_check(room=room, by=by)
        Room.objects.filter(pk=room.pk).update(**fields)
        room = Room.objects.get(pk=room.pk)  # a fresh instance: sockets may share the old one
        events.announce_on_commit(
            events.RoomUpdated(room.pk, room.name, room.seen_by, room.read_only)
        )
    return room


def membership_add(
    *, room: Room, user, role: str = Membership.Role.MEMBER, by=None
) -> tuple[Membership, bool]:
    """Add `user` to `room`; returns (membership, created). Adding twice changes nothing.
    A direct room keeps the two members it was created with."""
    _direct_members_fixed(room, by)
    if not user.is_active:
        raise refusals.UserNotFound()
    with room_order(room.pk), transaction.atomic():
        _admin_check(room=room, by=by)
        membership, created = Membership.objects.get_or_create(
            room=room, user=user, defaults={"role": role}
        )
        if created:
            events.announce_on_commit(
                events.MemberAdded(room.pk, user.pk, user.username, membership.role)
            )
    return membership, created


def membership_remove(*, room: Room, user, by=None) -> bool:
    """Remove `user` from `room`; its open sockets there close. False if it was not a member.

    Refused for a direct room's members, and, asked by a user, for a room's last admin
    (nobody could manage the room after them); the room's order makes two admins removing
    each other leave one. The system (`by=None`: an operator in the admin) may remove it."""
    _direct_members_fixed(room, by)
    with room_order(room.pk), transaction.atomic():
        _admin_check(room=room, by=by)
        admins = Membership.objects.filter(room=room, role=Membership.Role.ADMIN)
        if by is not None and set(admins.values_list("user_id", flat=True)) == {user.pk}:
            raise refusals.LastAdmin()
        deleted, _ = Membership.objects.filter(room=room, user=user).delete()
        if deleted:
            notifications_forget(room=room, user=user)
            events.announce_on_commit(events.MemberRemoved(room.pk, user.pk))
    return bool(deleted)


def _direct_members_fixed(room: Room, by=None) -> None:
    if room.type == Room.Type.DIRECT:
        raise refusals.NotAllowed(DIRECT_MEMBERS_ARE_FIXED)
    if room.type == Room.Type.RECORD and by is not None:
        raise refusals.NotAllowed(RECORD_MEMBERS_FOLLOW_THE_RECORD)


def user_deactivated(*, user) -> None:
    """Close every socket of a user who was just deactivated, in each of their rooms."""
    room_ids = Membership.objects.filter(user=user).values_list("room_id", flat=True)
    for room_id in room_ids:
        events.announce_on_commit(
            events.MemberRemoved(room_id, user.pk, reason=events.USER_INACTIVE)
        )


def direct_room_get_or_create(*, user, other) -> tuple[Room, bool]:
    """The one direct room of this pair of users, created on first use."""
    if user.pk == other.pk:
        raise refusals.InvalidRequest("a direct room needs another user")
    low, high = sorted([user, other], key=lambda person: person.pk)
    key = f"{low.pk}:{high.pk}"
    existing = accessible_rooms(user).filter(direct_key=key).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            room = Room.objects.create(
                name=f"{low.username} & {high.username}",
                type=Room.Type.DIRECT,
                created_by=user,
                direct_key=key,
            )
            Membership.objects.bulk_create(
                [Membership(room=room, user=low), Membership(room=room, user=high)]
            )
    except IntegrityError:  # the other user created it at the same moment
        return Room.objects.get(direct_key=key), False
    return room, True
