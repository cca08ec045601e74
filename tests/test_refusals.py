"""One refusal vocabulary: every domain refusal has a row at each edge, with the same code, and
REST answers every error in one shape, `{"code", "detail"}`."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from chat.api.errors import REST_REFUSALS
from chat.domain import refusals
from chat.protocol import CloseCode, Rejection
from chat.realtime.refusals import WEBSOCKET_REFUSALS
from tests.factories import access_token, expired_access_token, make_room, make_user


@pytest.mark.parametrize("refusal", refusals.all_refusals(), ids=lambda r: r.__name__)
def test_every_refusal_has_a_row_in_both_edge_tables_with_its_own_code(refusal):
    assert refusal in WEBSOCKET_REFUSALS, "add it to chat/realtime/refusals.py"
    assert refusal in REST_REFUSALS, "add it to chat/api/errors.py"
    assert str(WEBSOCKET_REFUSALS[refusal]) == refusal.code
    assert 400 <= REST_REFUSALS[refusal] < 500
    assert refusal().detail


def test_room_refusals_close_the_socket_and_the_others_leave_it_open():
    closing = {r for r, code in WEBSOCKET_REFUSALS.items() if isinstance(code, Rejection)}
    assert closing == {refusals.RoomNotFound, refusals.NotAMember}
    assert WEBSOCKET_REFUSALS[refusals.NotAMember].close_code == CloseCode.FORBIDDEN


def bearer(token: str | None) -> APIClient:
    client = APIClient()
    if token is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("token", "code"),
    [
        (None, "authentication_required"),
        ("expired", "token_expired"),
        ("not-a-jwt", "token_invalid"),
    ],
)
def test_rest_auth_errors_use_the_sockets_codes(token, code):
    user = make_user("ana")
    if token == "expired":
        token = expired_access_token(user)

    response = bearer(token).get("/api/chat/rooms/")

    assert response.status_code == 401
    body = response.json()
    assert (body["code"], set(body)) == (code, {"code", "detail"})
    assert body["detail"]


@pytest.mark.django_db
def test_rest_errors_have_one_shape_for_not_found_bad_json_and_forbidden():
    admin, member = make_user("adm"), make_user("mem")
    room = make_room(admins=[admin], members=[member])
    client = bearer(access_token(member))

    unknown = client.get("/api/chat/rooms/00000000-0000-0000-0000-000000000000/")
    bad_json = client.generic(
        "POST", f"/api/chat/rooms/{room.pk}/messages/", "{oops", content_type="application/json"
    )
    forbidden = client.post(
        f"/api/chat/rooms/{room.pk}/members/", {"user_id": admin.pk}, format="json"
    )

    assert (unknown.status_code, unknown.json()["code"]) == (404, "room_not_found")
    assert (bad_json.status_code, bad_json.json()["code"]) == (400, "invalid_json")
    assert (forbidden.status_code, forbidden.json()["code"]) == (403, "not_room_admin")
    for response in (unknown, bad_json, forbidden):
        assert set(response.json()) == {"code", "detail"} and response.json()["detail"]
