"""Handshakes that must be refused, through the real ASGI app (auth middleware, routing, consumer).

Each refusal: one error frame with the exact code, the matching close code, nothing of the room
sent before it, nothing stored, and the member already connected to the room receives nothing,
not even when the refused socket keeps sending after the close.
"""

from __future__ import annotations

import json
import uuid

import jwt
import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from rest_framework_simplejwt.tokens import AccessToken

from chat.domain.models import Membership
from tests import factories
from tests.security.conftest import assert_silent, expect_rejection, hang_up, stored_count
from tests.ws import joined, open_socket, room_path

pytestmark = [
    pytest.mark.django_db(transaction=True),
    # An HS512 token signed with the (short) development key, on purpose.
    pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning"),
]


def _forged(user, *, algorithm: str = "HS256", **claims) -> str:
    """A token signed with the server's own key, with other claims or another algorithm."""
    payload = AccessToken.for_user(user).payload | claims
    return jwt.encode(payload, settings.SECRET_KEY, algorithm=algorithm)


def _tampered_payload(user, victim) -> str:
    """The signature of `user`'s token on a payload claiming to be `victim`."""
    header, _, signature = factories.access_token(user).split(".")
    claims = json.dumps(AccessToken.for_user(victim).payload).encode()
    body = jwt.utils.base64url_encode(claims).decode()
    return f"{header}.{body}.{signature}"


def _expired_with_other_key(user) -> str:
    expired = AccessToken.for_user(user).payload | {"exp": 1_000_000_000}
    return jwt.encode(expired, "another-key-" + "y" * 40, algorithm="HS256")


TOKEN_CASES = [
    # (id, query token from (connecting user, another member), bearer header, error code)
    ("no-token", lambda u, v: None, None, "authentication_required"),
    ("empty-token", lambda u, v: "", None, "authentication_required"),
    ("garbage", lambda u, v: "garbage", None, "token_invalid"),
    ("10kb", lambda u, v: "x" * 10_240, None, "token_invalid"),
    (
        "10kb-real-prefix",
        lambda u, v: factories.access_token(u) + "A" * 10_240,
        None,
        "token_invalid",
    ),
    ("other-key", lambda u, v: factories.token_signed_with_other_key(u), None, "token_invalid"),
    ("alg-none", lambda u, v: factories.unsigned_token(u), None, "token_invalid"),
    # Same key, an algorithm the server does not accept: no algorithm confusion.
    ("alg-hs512", lambda u, v: _forged(u, algorithm="HS512"), None, "token_invalid"),
    ("tampered-user-id", lambda u, v: _tampered_payload(u, v), None, "token_invalid"),
    ("no-token-type", lambda u, v: _forged(u, token_type=None), None, "token_invalid"),
    ("expired", lambda u, v: factories.expired_access_token(u), None, "token_expired"),
    # A forged token must not learn "expired": the signature is checked first.
    ("expired-other-key", lambda u, v: _expired_with_other_key(u), None, "token_invalid"),
    ("refresh-as-access", lambda u, v: factories.refresh_token(u), None, "token_invalid"),
    # The header wins over the query string, also when the header is the bad one.
    ("bad-bearer-good-query", lambda u, v: factories.access_token(u), "garbage", "token_invalid"),
    ("bearer-alg-none", lambda u, v: None, "unsigned", "token_invalid"),
]


@pytest.mark.parametrize(
    ("make_token", "bearer", "code"),
    [case[1:] for case in TOKEN_CASES],
    ids=[case[0] for case in TOKEN_CASES],
)
async def test_handshake_bad_token_is_refused_with_4401(room, alice, bob, make_token, bearer, code):
    listener = await joined(room_path(room), token=factories.access_token(alice))
    if bearer == "unsigned":
        bearer = factories.unsigned_token(bob)
    refused = await open_socket(room_path(room), token=make_token(bob, alice), bearer=bearer)
    await expect_refusal_and_no_trace(refused, listener, code, 4401)


@pytest.mark.parametrize(
    ("change", "code"),
    [("deactivate", "user_inactive"), ("delete", "token_invalid")],
)
async def test_handshake_token_of_inactive_or_deleted_user_is_refused(room, alice, change, code):
    carol = await _member(room, "carol")
    token = factories.access_token(carol)  # issued while the account was fine
    if change == "deactivate":
        carol.is_active = False
        await carol.asave()
    else:
        await carol.adelete()
    listener = await joined(room_path(room), token=factories.access_token(alice))
    refused = await open_socket(room_path(room), token=token)
    await expect_refusal_and_no_trace(refused, listener, code, 4401)


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "null",
        "http://localhost:3000.evil.example",  # malformed: its port is not a number
        "http://evil.example:3000",
        "http://127.0.0.1:3000@evil.example",
        "http://127.0.0.1.nip.io:3000",
        "file://",
        "javascript:alert(1)",
        "http://[::1",
        "",
    ],
)
async def test_handshake_foreign_origin_is_refused_with_4403(room, alice, bob, origin):
    listener = await joined(room_path(room), token=factories.access_token(alice))
    refused = await open_socket(room_path(room), token=factories.access_token(bob), origin=origin)
    await expect_refusal_and_no_trace(refused, listener, "origin_not_allowed", 4403)


async def test_handshake_non_member_is_refused_with_4403(room, alice, outsider):
    listener = await joined(room_path(room), token=factories.access_token(alice))
    refused = await open_socket(room_path(room), token=factories.access_token(outsider))
    await expect_refusal_and_no_trace(refused, listener, "not_a_member", 4403)


ROOM_PATHS = [
    f"/ws/chat/{uuid.UUID(int=0)}/",
    f"/ws/chat/{uuid.uuid4()}/",
    "/ws/chat/not-a-uuid/",
    "/ws/chat/123/",
    "/ws/chat/%00/",
    "/ws/chat/' OR '1'='1/",
    "/ws/chat/..%2F..%2Fadmin/",
    "/ws/chat/" + "a" * 2000 + "/",
    "/ws/chat/{ROOM}x/",  # a real room's id with one character too many
    "/ws/chat/{ROOM}/extra/",
    "/ws/",
    "/ws/chat/",
    "/ws/other/",
    "/ws/chat/teste/extra/",
    "/admin/",
]


@pytest.mark.parametrize("path", ROOM_PATHS)
async def test_handshake_unknown_or_malformed_room_path_is_4404(room, alice, bob, path):
    listener = await joined(room_path(room), token=factories.access_token(alice))
    path = path.replace("{ROOM}", str(room.pk))
    refused = await open_socket(path, token=factories.access_token(bob))
    await expect_refusal_and_no_trace(refused, listener, "room_not_found", 4404)


async def test_handshake_public_room_cannot_reach_a_real_room(room, alice):
    """Frames of the token-less public room never reach a real room's members."""
    listener = await joined(room_path(room), token=factories.access_token(alice))
    public = await joined("/ws/chat/teste/")
    await public.send_json_to({"message": "oi", "room": str(room.pk)})
    echoed = await public.receive_json_from()
    assert (echoed["room"], echoed["id"]) == ("teste", None)
    await assert_silent(listener)
    assert await stored_count() == 0
    await hang_up(public)
    await hang_up(listener)


async def expect_refusal_and_no_trace(refused, listener, code: str, close_code: int) -> None:
    before = await stored_count()
    await expect_rejection(refused, code, close_code, hang_up_after=False)
    # A refused socket that keeps talking is still ignored, and its going away is not announced.
    await refused.send_json_to({"type": "chat.message", "message": "smuggled"})
    await refused.send_json_to({"type": "chat.sync", "after": 0})
    await hang_up(refused, close_code)
    await assert_silent(refused, listener)
    assert await stored_count() == before == 0
    await hang_up(listener)


async def _member(room, username: str):
    user = await database_sync_to_async(factories.make_user)(username)
    await Membership.objects.acreate(room=room, user=user)
    return user
