"""chat.realtime.auth: where tokens come from, what gets logged."""

import logging

import pytest

from chat.realtime.auth import token_from_scope
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
