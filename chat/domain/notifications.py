"""Mentions and notifications: who a message is for, their feed, and the e-mail digest.

A stored message notifies, once each: the members it mentions (`@username`; `@all`, every
member, when a room admin writes it; `@here`, the members online), the authors of the message
it replies to and of its thread's root, and the other member of a direct room. Notifications
are stored in the message's own transaction and announced to each user's sockets after it
commits (chat.domain.events.NotificationsCreated). A mention of a non-member notifies nobody.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Iterable
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import mail, signing
from django.db import transaction
from django.utils import timezone

from chat.domain import events
from chat.domain.access import key_scope
from chat.domain.models import Membership, Message, Notification, NotificationSettings, Room

logger = logging.getLogger(__name__)

# "@name" not inside a word or an e-mail address; Django's username characters.
MENTION = re.compile(r"(?<![\w@.+-])@([\w.@+-]+)")
ALL, HERE = "all", "here"

# Who is online in a room (the real-time tier's presence), installed by the wiring.
OnlineUsers = Callable[[uuid.UUID], set[int]]
_online_users: OnlineUsers = lambda room_id: set()  # noqa: E731 - until the wiring installs one


def online_users_install(lookup: OnlineUsers) -> None:
    global _online_users
    _online_users = lookup


def may_mention(text: str) -> bool:
    """Cheap test first: most messages mention nobody."""
    return "@" in text


def mentioned_user_ids(*, room: Room, author, text: str) -> list[int]:
    """The room's members `text` mentions (never the author), in a stable order."""
    names = {_trimmed(name) for name in MENTION.findall(text)}
    members = Membership.objects.filter(room=room).exclude(user=author)
    found: set[int] = set()
    if ALL in names and _is_admin(room, author):
        found |= set(members.values_list("user_id", flat=True))
    if HERE in names:
        online = _online_users(room.pk) - {author.pk}
        found |= set(members.filter(user_id__in=online).values_list("user_id", flat=True))
    named = names - {ALL, HERE}
    if named:
        found |= set(
            members.filter(user__username__in=named, user__is_active=True).values_list(
                "user_id", flat=True
            )
        )
    return sorted(found)


def _trimmed(name: str) -> str:
    # "@maria." at the end of a sentence: the dot is punctuation (usernames rarely end so).
    return name.rstrip(".")


def _is_admin(room: Room, user) -> bool:
    return Membership.objects.filter(room=room, user=user, role=Membership.Role.ADMIN).exists()


def notifications_for_message(
    *, message: Message, room: Room, replied_to: Message | None, root: Message | None
) -> list[Notification]:
    """Store the message's notifications (inside its transaction); announced on commit."""
    reasons: dict[int, str] = {}
    for user_id in message.mentions:
        reasons.setdefault(user_id, Notification.Kind.MENTION)
    for replied in (replied_to, root):
        if replied is not None:
            reasons.setdefault(replied.author_id, Notification.Kind.REPLY)
    members = set(Membership.objects.filter(room=room).values_list("user_id", flat=True))
    if room.type == Room.Type.DIRECT:
        for user_id in members:
            reasons.setdefault(user_id, Notification.Kind.DIRECT)
    reasons.pop(message.author_id, None)
    # Only members hear of the room: the author replied to may have left it since.
    return _notify(message, room, {user: kind for user, kind in reasons.items() if user in members})


def notifications_for_edit(*, message: Message, room: Room, before: Iterable[int]) -> None:
    """An edit that mentions someone new notifies them; earlier mentions are not repeated."""
    new = set(message.mentions) - set(before) - {message.author_id}
    _notify(message, room, dict.fromkeys(new, Notification.Kind.MENTION))


def _notify(message: Message, room: Room, reasons: dict[int, str]) -> list[Notification]:
    if not reasons:
        return []
    already = dict(
        Notification.objects.filter(message=message, user_id__in=reasons).values_list(
            "user_id", "kind"
        )
    )
    _mention_wins(message, reasons, already)
    created = Notification.objects.bulk_create(
        [
            Notification(user_id=user_id, kind=kind, room=room, message=message)
            for user_id, kind in sorted(reasons.items())
            if user_id not in already
        ]
    )
    if created:
        events.announce_on_commit(events.NotificationsCreated(room.pk, tuple(created), message))
    return created


def _mention_wins(message: Message, reasons: dict[int, str], already: dict[int, str]) -> None:
    """A user told of a message as a reply (or direct message) and mentioned in it by an edit
    now has a mention: the room list's `mention_count` counts it. They are not told again."""
    upgraded = [
        user_id
        for user_id, kind in reasons.items()
        if kind == Notification.Kind.MENTION and already.get(user_id, kind) != kind
    ]
    if upgraded:
        Notification.objects.filter(message=message, user_id__in=upgraded).update(
            kind=Notification.Kind.MENTION
        )


# --- the feed -----------------------------------------------------------------------------


def notification_list(*, user, before: int | None = None, limit: int = 50):
    """The user's notifications, newest first, `limit` of them older than `before`; returns
    (notifications with message, author and room loaded, has_more)."""
    rows = _visible(user).select_related("message__author", "room")
    if before is not None:
        rows = rows.filter(id__lt=before)
    page = list(rows.order_by("-id")[: limit + 1])
    return page[:limit], len(page) > limit


def _visible(user):
    """The user's notifications of rooms they are still a member of (a member removed loses
    them with the room: chat.domain.services.membership_remove deletes them too)."""
    visible = Notification.objects.filter(user=user, room__memberships__user=user)
    scope = key_scope(user)  # an API key's: its rooms only
    return visible if scope is None else visible.filter(room_id__in=scope)


def notifications_forget(*, room: Room, user) -> None:
    """A member leaves the room: their notifications of it go (feed, digests)."""
    Notification.objects.filter(room=room, user=user).delete()


def notifications_read(*, user, up_to: int) -> int:
    """Mark the user's notifications up to id `up_to` read; returns how many changed."""
    return Notification.objects.filter(user=user, id__lte=up_to, read_at__isnull=True).update(
        read_at=timezone.now()
    )


def unread_notification_count(*, user) -> int:
    return _visible(user).filter(read_at__isnull=True).count()


# --- e-mail digests -------------------------------------------------------------------------

UNSUBSCRIBE_SALT = "chat.notifications.unsubscribe"


def email_digests_enabled(user) -> bool:
    found = NotificationSettings.objects.filter(user=user).values_list("email_digests", flat=True)
    return next(iter(found), True)


def email_digests_set(*, user, enabled: bool) -> None:
    NotificationSettings.objects.update_or_create(user=user, defaults={"email_digests": enabled})


def unsubscribe_token(user) -> str:
    return signing.dumps(user.pk, salt=UNSUBSCRIBE_SALT)


def unsubscribe_by_token(token: str) -> bool:
    """Turn a user's digests off from a link in a digest (no login); False if the link is bad."""
    try:
        user_id = signing.loads(token, salt=UNSUBSCRIBE_SALT)
    except signing.BadSignature:
        return False
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None:
        return False
    email_digests_set(user=user, enabled=False)
    return True


def digests_send(*, now=None, unsubscribe_url: Callable[[str], str] | None = None) -> int:
    """E-mail each user their unread notifications older than CHAT_NOTIFY_EMAIL_AFTER_MINUTES
    that no digest carried yet: one e-mail per user, each notification in one digest only.
    Returns how many e-mails were sent. What cron runs (`manage.py send_chat_digests`)."""
    now = now or timezone.now()
    due = now - timedelta(minutes=settings.CHAT_NOTIFY_EMAIL_AFTER_MINUTES)
    pending = Notification.objects.filter(
        read_at__isnull=True, emailed_at__isnull=True, created_at__lte=due
    )
    sent = 0
    for user_id in pending.values_list("user_id", flat=True).distinct().order_by("user_id"):
        try:
            sent += _digest_send(user_id, pending, now, unsubscribe_url)
        except Exception:  # one address that fails must not stop everyone's digest
            logger.exception("chat digest to user %s failed; tried again next run", user_id)
    return sent


def _digest_send(user_id: int, pending, now, unsubscribe_url) -> int:
    user = get_user_model().objects.get(pk=user_id)
    with transaction.atomic():
        # Locked, so two digest runs at once cannot both send the same notifications.
        mine = list(
            pending.filter(user_id=user_id)
            .select_for_update(skip_locked=True, of=("self",))  # not the messages, rooms
            .select_related("message__author", "room")
            .order_by("id")
        )
        if not mine:
            return 0
        Notification.objects.filter(pk__in=[n.pk for n in mine]).update(emailed_at=now)
        if not user.email or not user.is_active or not email_digests_enabled(user):
            return 0  # marked all the same: nobody is ever sent them later, in a pile
        _digest_mail(user, mine, unsubscribe_url).send()
    logger.info("chat digest sent to user %s: %d notifications", user.pk, len(mine))
    return 1


def _digest_mail(user, notifications: list[Notification], unsubscribe_url):
    lines = [f"{len(notifications)} notificações não lidas no chat:", ""]
    for notification in notifications:
        message = notification.message
        text = "(mensagem apagada)" if message.deleted_at else message.text[:200]
        label = {"mention": "menção", "reply": "resposta", "direct": "mensagem direta"}
        lines.append(
            f"- [{notification.room.name}] {label[notification.kind]} de "
            f"{message.author.username}: {text}"
        )
    if unsubscribe_url is not None:
        lines += ["", f"Não quer mais estes e-mails? {unsubscribe_url(unsubscribe_token(user))}"]
    return mail.EmailMessage(
        subject=f"[Chat] {len(notifications)} notificações não lidas",
        body="\n".join(lines),
        to=[user.email],
    )
