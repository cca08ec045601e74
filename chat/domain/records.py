"""Rooms bound to records of the CRM (a deal, a contact, a ticket), whose access follows the record.

A record's room is a Room with `record_type`/`record_id` (unique per record). Who may see it is
the record's access policy's answer (CHAT_RECORD_ACCESS_POLICY, or one per model in
CHAT_RECORD_ACCESS_POLICIES), and the room's memberships are that answer, written down:
`room_access_changed(record)` asks the policy again and adds who gained access and removes who
lost it (their sockets close with `removed_from_room`, on every process). So every check of the
chat stays the one membership lookup (chat.domain.access), and a change of access is live the
moment CRM code reports it (or a followed model is saved: `follow_record_model`).

docs/crm-integration.md shows a CRM app binding its model, with its own policy.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from django.apps import apps
from django.conf import settings
from django.contrib import auth
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.utils.module_loading import import_string

from chat.domain import events, refusals, services
from chat.domain.models import Membership, Message, Room
from chat.domain.ordering import room_order

logger = logging.getLogger(__name__)

MAX_LABEL_LENGTH = 200  # Room.name and Room.record_label


class RecordAccessPolicy(Protocol):
    """Who may see a record, and so its room (and, optionally, `closed(record) -> bool`:
    whether a new room of it starts read-only)."""

    def can_view(self, user, record) -> bool: ...

    def users_with_access(self, record) -> Iterable: ...


class PermissionPolicy:
    """Django's permissions: `<app>.view_<model>` on the record (object permissions, as
    django-guardian or django-rules answer them), or else on the model (Django's own).

    `users_with_access` asks each authentication backend that can list users (`with_perm`:
    Django's ModelBackend, for model permissions and superusers). A backend of object
    permissions that cannot list them needs a policy of its own."""

    def can_view(self, user, record) -> bool:
        permission = view_permission(record)
        return bool(
            user.is_active and (user.has_perm(permission, record) or user.has_perm(permission))
        )

    def users_with_access(self, record) -> Iterable:
        permission = view_permission(record)
        users = set()
        for backend in auth.get_backends():
            if hasattr(backend, "with_perm"):
                users |= set(backend.with_perm(permission, obj=record))
                users |= set(backend.with_perm(permission))
        return users


def view_permission(record) -> str:
    meta = record._meta
    return f"{meta.app_label}.view_{meta.model_name}"


def record_type_name(model_or_record) -> str:
    """ "<app_label>.<model>", as URLs and payloads name a record's type (e.g. "crm.deal")."""
    meta = model_or_record._meta
    return f"{meta.app_label}.{meta.model_name}"


def policy_for(model_or_record) -> RecordAccessPolicy:
    per_model = settings.CHAT_RECORD_ACCESS_POLICIES
    path = per_model.get(record_type_name(model_or_record), settings.CHAT_RECORD_ACCESS_POLICY)
    return import_string(path)()


def record_closed(record) -> bool:
    """Whether the record is closed (its room read-only from the start): a policy may say so
    with `closed(record)` (a won deal); by default no record is."""
    closed = getattr(policy_for(record), "closed", None)
    return bool(closed(record)) if closed is not None else False


def record_label(record) -> str:
    return str(record)[:MAX_LABEL_LENGTH] or record_type_name(record)


# --- finding records and their rooms --------------------------------------------------------


def record_find(*, type_name: str, record_id: str):
    """The record of "<app_label>.<model>" with primary key `record_id`, or RecordNotFound."""
    try:
        model = apps.get_model(type_name)
    except (LookupError, ValueError) as error:  # no such app or model, or not "app.model"
        raise refusals.RecordNotFound() from error
    try:
        return model._default_manager.get(pk=record_id)
    except (model.DoesNotExist, ValueError, TypeError, ValidationError) as error:
        raise refusals.RecordNotFound() from error


def room_of_record(record) -> Room | None:
    """The record's room, if it has one yet."""
    record_type = ContentType.objects.get_for_model(record)
    return Room.objects.filter(record_type=record_type, record_id=str(record.pk)).first()


def room_for_record(record) -> Room:
    """The record's room, created on first use with the members its policy lets in."""
    room = room_of_record(record)
    if room is not None:
        return room
    label = record_label(record)
    if len(str(record.pk)) > Room._meta.get_field("record_id").max_length:
        raise refusals.RecordNotFound("this record's key is too long to have a room")
    try:
        with transaction.atomic():
            room = Room.objects.create(
                name=label,
                type=Room.Type.RECORD,
                record_type=ContentType.objects.get_for_model(record),
                record_id=str(record.pk),
                record_label=label,
                read_only=record_closed(record),
            )
    except IntegrityError:  # created meanwhile by another request
        return room_of_record(record)
    logger.info("room %s created for %s %s", room.pk, record_type_name(record), record.pk)
    room_access_changed(record)
    return room


def record_room_for_user(*, user, type_name: str, record_id: str) -> Room:
    """What GET /api/chat/records/<type>/<id>/room/ answers: the record's room (made on first
    use) for a user the policy lets see the record; as if there were no record otherwise."""
    record = record_find(type_name=type_name, record_id=record_id)
    if not policy_for(record).can_view(user, record):
        raise refusals.RecordNotFound()
    room = room_for_record(record)
    if not Membership.objects.filter(room=room, user=user).exists():
        # The policy says yes (an object permission its backend cannot list, or a change not
        # reported yet): the user joins, and stays while can_view says so.
        services.membership_add(room=room, user=user)
    return room


def record_viewable_by(user, room: Room) -> bool:
    """The record's policy's answer for `user` now (False if the record is gone)."""
    record = room.record
    return record is not None and policy_for(record).can_view(user, record)


def record_payload(room: Room) -> dict[str, Any] | None:
    """A room's `record`: {type, id, label}, or None for a room of no record."""
    if room.record_type_id is None:
        return None
    record_type = ContentType.objects.get_for_id(room.record_type_id)
    return {
        "type": f"{record_type.app_label}.{record_type.model}",
        "id": room.record_id,
        "label": room.record_label,
    }


# --- access, read-only, system messages ----------------------------------------------------


@dataclass(frozen=True)
class AccessChange:
    added: tuple[int, ...]
    removed: tuple[int, ...]


def room_access_changed(record) -> AccessChange:
    """Ask the record's policy again who may see its room; add who gained access, remove who
    lost it (their open sockets close with `removed_from_room`, 4403, on every process). What
    CRM code calls when an owner, team or permission changes. No room yet: nothing to do.

    The record is read again as stored, and one recomputation of a room runs at a time (a
    lock of its own, in every process): two changes reported close together cannot apply an
    older answer after a newer one."""
    room = room_of_record(record)
    if room is None:
        return AccessChange((), ())
    with room_order(_access_lock_id(room)):
        stored = type(record)._default_manager.filter(pk=record.pk).first()
        if stored is None:
            record_room_close(room)
            return AccessChange((), ())
        return _access_apply(room, stored)


def _access_lock_id(room: Room) -> uuid.UUID:
    """The key of a room's access recomputation: not the room's order, which the membership
    changes inside it take."""
    return uuid.uuid5(room.pk, "access")


def _access_apply(room: Room, record) -> AccessChange:
    """Who may see the record: `users_with_access`, and the members `can_view` still lets
    in (a backend of object permissions may answer for a user without being able to list
    them all: such users join when they open the room, and stay while it says yes)."""
    policy = policy_for(record)
    allowed = {user.pk: user for user in policy.users_with_access(record) if user.is_active}
    members = get_user_model().objects.filter(chat_rooms=room).exclude(pk__in=list(allowed))
    allowed |= {user.pk: user for user in members if policy.can_view(user, record)}
    current = set(Membership.objects.filter(room=room).values_list("user_id", flat=True))
    gained, lost = sorted(allowed.keys() - current), sorted(current - allowed.keys())
    for user_id in gained:
        services.membership_add(room=room, user=allowed[user_id])
    for user in get_user_model().objects.filter(pk__in=lost):
        services.membership_remove(room=room, user=user)
    _label_refresh(room, record)
    if gained or lost:
        logger.info("access to room %s: %d added, %d removed", room.pk, len(gained), len(lost))
    return AccessChange(tuple(gained), tuple(lost))


def _label_refresh(room: Room, record) -> None:
    label = record_label(record)
    if label != room.record_label:
        Room.objects.filter(pk=room.pk).update(record_label=label)
        room.record_label = label
        services.room_rename(room=room, name=label)


def room_set_read_only(record, read_only: bool = True) -> Room:
    """Close (or reopen) the record's room to new messages, edits and reactions (a won or lost
    deal): they are refused with `room_read_only`; history stays readable."""
    room = room_for_record(record)
    if room.read_only == read_only:
        return room
    # Members are told (`room.updated` with `read_only`), so clients can close the composer.
    return services.room_read_only_set(room=room, read_only=read_only)


def system_message_post(record, text: str, data: dict | None = None) -> Message:
    """An event of the record in its room (e.g. "stage changed: proposal → won"): stored,
    ordered and announced as messages are, with `kind` "system" and `data` for clients. Its
    author is the chat's system user (inactive, no password), not a member."""
    room = room_for_record(record)
    text = services.message_text_check(text)
    with room_order(room.pk), transaction.atomic():
        message = Message.objects.create(
            room=room,
            author=system_user(),
            text=text,
            kind=Message.Kind.SYSTEM,
            data=data or {},
        )
        events.announce_on_commit(events.MessageCreated(room.pk, message))
    return message


SYSTEM_USERNAME = "crm-system"


def system_user():
    """The author of system messages: made on first use, inactive, unable to log in."""
    users = get_user_model()._default_manager
    user, created = users.get_or_create(username=SYSTEM_USERNAME, defaults={"is_active": False})
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    elif user.is_active or user.has_usable_password():
        # Someone's account by that name: it must not speak for the CRM.
        raise RuntimeError(
            f"the user {SYSTEM_USERNAME!r} can log in; it is reserved as the author of system "
            "messages: rename that account, or deactivate it and remove its password"
        )
    return user


# --- following a model's saves --------------------------------------------------------------


def follow_record_model(model, *, m2m_fields: Iterable[str] = ()) -> None:
    """Recompute access to a record's room whenever the record is saved (an owner changed),
    one of its many-to-many fields changes from either side (`deal.team.add(user)` or
    `user.deals.add(deal)`), or permissions change (a user's, a group's, a user's groups,
    superuser or active status): for models whose fields and permissions decide access. A
    deleted record's room is closed: read-only, and nobody's any more. Bulk writes
    (`QuerySet.update`, `bulk_create`, fixtures) send no signals: report them yourself."""
    label = model._meta.label
    _followed.add(model)
    post_save.connect(_record_saved, sender=model, dispatch_uid=f"chat-records-{label}")
    post_delete.connect(_record_deleted, sender=model, dispatch_uid=f"chat-records-del-{label}")
    for name in m2m_fields:
        field = model._meta.get_field(name)
        m2m_changed.connect(
            _members_changed_of(model, field),
            sender=field.remote_field.through,
            weak=False,
            dispatch_uid=f"chat-records-{label}-{name}",
        )
    _follow_permissions()


_followed: set = set()


def _record_saved(sender, instance, created: bool, raw: bool = False, **kwargs) -> None:
    if not raw and not created:
        _after_commit(room_access_changed, instance)


def _after_commit(function, *arguments) -> None:
    """Run after the change commits; a failure is logged, not the change's caller's error
    (the change is stored; the next report recomputes), and other callbacks still run."""

    def run() -> None:
        try:
            function(*arguments)
        except Exception:
            logger.exception("%s failed after a record changed", function.__name__)

    transaction.on_commit(run)


def _members_changed_of(model, field):
    """The m2m_changed receiver of one many-to-many field of a followed model, both sides."""
    through = field.remote_field.through
    record_column, other_column = field.m2m_field_name(), field.m2m_reverse_field_name()

    def changed(sender, instance, action: str, reverse: bool, pk_set=None, **kwargs) -> None:
        if not reverse:
            if action in ("post_add", "post_remove", "post_clear"):
                _after_commit(room_access_changed, instance)
            return
        # From the other side (user.deals.add(deal)): the records are pk_set's, or, for a
        # clear, the ones linked just before it.
        if action == "pre_clear":
            linked = through.objects.filter(**{other_column: instance.pk})
            instance._chat_cleared_records = list(
                linked.values_list(f"{record_column}_id", flat=True)
            )
            return
        if action not in ("post_add", "post_remove", "post_clear"):
            return
        ids = (
            pk_set if action != "post_clear" else instance.__dict__.pop("_chat_cleared_records", [])
        )
        for record in model._default_manager.filter(pk__in=list(ids or ())):
            _after_commit(room_access_changed, record)

    return changed


def _follow_permissions() -> None:
    """Permissions decide access for the default policy (and most others): when a user's,
    a group's or a user's groups change, or a user's superuser or active status may have,
    every followed model's rooms are recomputed (rare changes; every room of those types)."""
    from django.contrib.auth.models import Group  # the app registry is ready by now

    user_model = get_user_model()
    for through in (
        user_model.user_permissions.through,
        user_model.groups.through,
        Group.permissions.through,
    ):
        m2m_changed.connect(
            _permissions_changed, sender=through, dispatch_uid=f"chat-records-perms-{through}"
        )
    post_save.connect(_user_saved, sender=user_model, dispatch_uid="chat-records-user-saved")


def _permissions_changed(sender, action: str, **kwargs) -> None:
    if action in ("post_add", "post_remove", "post_clear"):
        _after_commit(followed_rooms_recompute)


def _user_saved(sender, instance, created: bool, update_fields=None, raw=False, **kwargs) -> None:
    # A login saves last_login alone: nothing that decides access.
    deciding = {"is_superuser", "is_active", "is_staff"}
    if raw or created or (update_fields is not None and not deciding & set(update_fields)):
        return
    _after_commit(followed_rooms_recompute)


def followed_rooms_recompute() -> int:
    """room_access_changed for every room of a followed model's records; how many rooms."""
    count = 0
    for model in _followed:
        record_type = ContentType.objects.get_for_model(model)
        ids = Room.objects.filter(record_type=record_type).values_list("record_id", flat=True)
        for record in model._default_manager.filter(pk__in=list(ids)):
            room_access_changed(record)
            count += 1
    return count


def _record_deleted(sender, instance, **kwargs) -> None:
    room = room_of_record(instance)
    if room is not None:
        _after_commit(record_room_close, room)


def record_room_close(room: Room) -> None:
    """The room of a record that is gone: read-only, every member removed (their sockets
    close with `removed_from_room`); the history stays, for the operators in the admin."""
    Room.objects.filter(pk=room.pk).update(read_only=True)
    for membership in Membership.objects.filter(room=room).select_related("user"):
        services.membership_remove(room=room, user=membership.user)
    logger.info(
        "room %s closed: its record %s %s is gone", room.pk, room.record_type_id, room.record_id
    )
