"""accounts.websocket_auth: where tokens come from, what gets logged."""

import logging

import pytest

from accounts.websocket_auth import token_from_scope
from tests import factories
from tests.ws import assert_rejected, joined, open_socket, room_path

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    ("headers", "query", "expected"),
    [
        ([], b"", None),
        ([], b"token=abc", "abc"),
        ([(b"authorization", b"Bearer hdr")], b"token=abc", "hdr"),
        ([(b"authorization", b"Basic xyz")], b"token=abc", "abc"),
        ([(b"authorization", b"Bearer ")], b"", None),
        ([], b"token=", None),
    ],
)
def test_token_from_scope_prefers_header(headers, query, expected):
    assert token_from_scope({"headers": headers, "query_string": query}) == expected


async def test_auth_logs_the_original_lines_and_never_the_token(room, alice, caplog):
    caplog.set_level(logging.INFO)
    token = factories.access_token(alice)
    communicator = await joined(room_path(room), token=token)
    await communicator.disconnect()
    assert "User found in JWT: alice" in caplog.text
    assert "WebSocket user authenticated: alice" in caplog.text
    assert token not in caplog.text
    assert token.split(".")[2] not in caplog.text


async def test_auth_failure_logs_reason_without_token(room, alice, caplog):
    caplog.set_level(logging.INFO)
    token = factories.expired_access_token(alice)
    communicator = await open_socket(room_path(room), token=token)
    await assert_rejected(communicator, "token_expired", 4401)
    assert "token_expired" in caplog.text
    assert token.split(".")[2] not in caplog.text
    rejected = [r for r in caplog.records if "WebSocket rejected" in r.getMessage()]
    assert rejected and "close=4401" in rejected[0].getMessage()


def test_token_claims_name_the_user_and_expiry_of_a_valid_access_token(alice):
    from accounts.websocket_auth import token_claims

    claims = token_claims(factories.access_token(alice))

    assert {field: str(value) for field, value in claims.user_lookup.items()} == {
        "id": str(alice.pk)  # simplejwt puts the id in the token as a string
    }
    assert claims.expires_at > 0
    invalid = ["garbage", factories.refresh_token(alice), factories.expired_access_token(alice)]
    assert [token_claims(token) for token in invalid] == [None, None, None]


async def test_with_revoke_checks_on_a_handshake_still_checks_the_password(
    room, alice, monkeypatch
):
    """CHECK_REVOKE_TOKEN needs the user's password hash: the one-query path steps aside and a
    token issued before a password change is refused, as over REST."""
    from rest_framework_simplejwt import authentication, tokens

    from accounts import websocket_auth

    # Each module holds the settings object it imported; switch the check on in each.
    in_use = {authentication.api_settings, tokens.api_settings, websocket_auth.jwt_settings}
    for jwt_settings in in_use:
        monkeypatch.setattr(jwt_settings, "CHECK_REVOKE_TOKEN", True)
    token = factories.access_token(alice)
    alice.set_password("a whole new password")
    await alice.asave()

    communicator = await open_socket(room_path(room), token=token)

    await assert_rejected(communicator, "token_invalid", 4401)
