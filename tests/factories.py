"""Users, rooms and tokens for tests: the smallest thing each test needs, nothing shared."""

from __future__ import annotations

import itertools
from datetime import timedelta

import jwt
from django.conf import settings
from django.contrib.auth import get_user_model
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from chat.domain.models import Membership, Room

PASSWORD = "s3cret-pass-123"
_numbers = itertools.count(1)


def make_user(username: str | None = None, **fields):
    username = username or f"user{next(_numbers)}"
    return get_user_model().objects.create_user(username=username, password=PASSWORD, **fields)


def make_room(*, members=(), admins=(), name: str = "Sala", type: str = Room.Type.GROUP) -> Room:
    creator = next(iter(admins), None) or next(iter(members), None)
    room = Room.objects.create(name=name, type=type, created_by=creator)
    for user in admins:
        Membership.objects.create(room=room, user=user, role=Membership.Role.ADMIN)
    for user in members:
        Membership.objects.create(room=room, user=user, role=Membership.Role.MEMBER)
    return room


def access_token(user) -> str:
    return str(AccessToken.for_user(user))


def expired_access_token(user) -> str:
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=-timedelta(seconds=5))
    return str(token)


def refresh_token(user) -> str:
    return str(RefreshToken.for_user(user))


def token_signed_with_other_key(user) -> str:
    payload = AccessToken.for_user(user).payload
    return jwt.encode(payload, "not-the-server-key-" + "x" * 32, algorithm="HS256")


def unsigned_token(user) -> str:
    """`alg: none`: a token anybody can forge."""
    payload = AccessToken.for_user(user).payload
    return jwt.encode(payload, None, algorithm="none")


def server_key() -> str:
    return settings.SECRET_KEY
