"""Making, checking and revoking API keys. Keys are never logged: only their prefix is.

A key authenticates its service account on REST (apikeys.authentication) and at a
WebSocket's handshake (chat.realtime.auth); the user it returns carries `api_key_room_ids`,
the rooms the key was granted, which the one membership rule intersects with the account's
memberships (chat.domain.access.in_key_scope).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from apikeys.models import ApiKey
from chat.domain import events, services

logger = logging.getLogger(__name__)

SEPARATOR = "."  # never in token_urlsafe's alphabet: the first one ends the prefix
MAX_KEY_LENGTH = 200  # real keys are 54 characters; longer is no key, and is not hashed
LAST_USED_EVERY = timedelta(minutes=1)  # last_used_at: one write a minute, not per request

# Refusal codes, the same on REST (401) and the WebSocket (4401): docs/protocol.md.
KEY_INVALID = "token_invalid"  # unknown, malformed, or not matching: as a bad token
KEY_REVOKED = "api_key_revoked"
USER_INACTIVE = "user_inactive"
REFUSAL_DETAILS = {
    KEY_INVALID: "API key is not valid",
    KEY_REVOKED: "this API key was revoked; ask for a new one",
    USER_INACTIVE: "this user account is inactive",
}


class NotAServiceAccount(ValueError):
    """Keys are for service accounts only: a person's would post unmarked as a bot."""


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()


def _new_key() -> tuple[str, str]:
    """(prefix, secret). The prefix in hex: a key or prefix starting with "-" would read as
    an option on a command line (`manage.py revoke_api_key`). 256 bits of secret."""
    return secrets.token_hex(5), secrets.token_urlsafe(32)


def service_account_get_or_create(username: str):
    """The service account `username`, made if there is none: a bot without a usable
    password (it cannot log in, only use keys). A person of that name is refused."""
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(username=username, defaults={"is_bot": True})
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    elif not user.is_bot:
        raise NotAServiceAccount(f"{username} is a person, not a service account")
    return user


def key_create(*, user, rooms, name: str = "") -> tuple[ApiKey, str]:
    """A new key of service account `user` for `rooms`; returns (key, the key's text), the
    text to be shown once. The account becomes a member of each room (announced to it as any
    new member is), so that the key's scope and the account's memberships agree."""
    if not user.is_bot:
        raise NotAServiceAccount(f"{user.username} is a person, not a service account")
    rooms = list(rooms)
    for room in rooms:
        services.membership_add(room=room, user=user)
    prefix, secret = _new_key()
    with transaction.atomic():
        key = ApiKey.objects.create(user=user, name=name, prefix=prefix, digest=_digest(secret))
        key.rooms.set(rooms)
    logger.info("API key %s created for %s (%d rooms)", prefix, user.username, len(rooms))
    return key, f"{prefix}{SEPARATOR}{secret}"


def key_secret_set(key: ApiKey) -> str:
    """Give an unsaved key its prefix and digest (the admin's add form); returns its text."""
    key.prefix, secret = _new_key()
    key.digest = _digest(secret)
    return f"{key.prefix}{SEPARATOR}{secret}"


def key_revoke(key: ApiKey) -> bool:
    """Revoke `key`; its open sockets, on every server process, close once this commits
    (`api_key_revoked` / 4401). False if it was revoked already."""
    now = timezone.now()
    with transaction.atomic():
        revoked = ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=now)
        if revoked:
            events.announce_on_commit(events.ApiKeyRevoked(user_id=key.user_id, key_id=key.pk))
    if revoked:
        key.revoked_at = now
        logger.info("API key %s of user %s revoked", key.prefix, key.user_id)
    return bool(revoked)


def key_from_text(text: str) -> ApiKey | None:
    """The key a key's text (or its prefix alone) names, revoked or not; None if none."""
    prefix = text.strip().partition(SEPARATOR)[0]
    return ApiKey.objects.select_related("user").filter(prefix=prefix).first() if prefix else None


@dataclass(frozen=True, slots=True)
class KeyCheck:
    """What a key says: its service account (carrying `api_key_room_ids`), or why not."""

    key: ApiKey | None
    refusal: str | None = None

    @property
    def user(self):
        return self.key.user if self.key is not None else None


def key_authenticate(text: str) -> KeyCheck:
    """The key `text` is, if it is a valid one; its user then carries the key's rooms."""
    prefix, separator, secret = text.strip().partition(SEPARATOR)
    if not separator or not prefix or not secret or len(text) > MAX_KEY_LENGTH:
        return KeyCheck(None, KEY_INVALID)
    key = ApiKey.objects.select_related("user").filter(prefix=prefix).first()
    if key is None or not hmac.compare_digest(key.digest, _digest(secret)):
        return KeyCheck(None, KEY_INVALID)
    if key.revoked_at is not None:
        return KeyCheck(None, KEY_REVOKED)
    if not key.user.is_active:
        return KeyCheck(None, USER_INACTIVE)
    key.user.api_key_room_ids = frozenset(key.rooms.values_list("pk", flat=True))
    key.user.api_key_id = key.pk
    _mark_used(key)
    return KeyCheck(key)


def _mark_used(key: ApiKey) -> None:
    """last_used_at, at most once a LAST_USED_EVERY (conditional: concurrent requests of the
    same key write it once)."""
    now = timezone.now()
    if key.last_used_at is not None and now - key.last_used_at < LAST_USED_EVERY:
        return
    ApiKey.objects.filter(pk=key.pk).exclude(last_used_at__gte=now - LAST_USED_EVERY).update(
        last_used_at=now
    )
    key.last_used_at = now


def revoked_key_ids(key_ids: set[int]) -> set[int]:
    """Which of these keys are revoked (or gone): the account check of open sockets."""
    valid = ApiKey.objects.filter(pk__in=key_ids, revoked_at__isnull=True)
    return key_ids - set(valid.values_list("pk", flat=True))
