"""chat.access: the handshake's one-query rule lets in exactly whom accessible_rooms does."""

import uuid

import pytest

from chat.access import accessible_rooms, member_access
from tests.factories import make_room


@pytest.mark.parametrize(
    ("who", "active", "let_in"),
    [("alice", True, True), ("bob", True, True), ("bob", False, False), ("outsider", True, False)],
    ids=["admin", "member", "inactive-member", "non-member"],
)
def test_member_access_agrees_with_accessible_rooms(request, room, who, active, let_in):
    user = request.getfixturevalue(who)
    user.is_active = active
    user.save()

    membership = member_access(user_lookup={"id": user.pk}, room_id=str(room.pk))

    assert accessible_rooms(user).filter(pk=room.pk).exists() is let_in
    assert (membership is not None) is let_in
    if let_in:
        assert (membership.user, membership.room) == (user, room)
        assert membership.user.username == user.username  # loaded, ready for the frames


def test_member_access_of_another_room_or_no_room_is_none(room, alice, outsider):
    others = make_room(admins=[outsider], name="Outra")

    assert member_access(user_lookup={"id": alice.pk}, room_id=str(others.pk)) is None
    assert member_access(user_lookup={"id": alice.pk}, room_id=str(uuid.uuid4())) is None
    assert member_access(user_lookup={"id": alice.pk}, room_id="not-a-uuid") is None
