"""Rooms bound to CRM records (docs/crm-integration.md): made on first use, access from the
record's policy and live when it changes, read-only when the record closes, system messages."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Group, Permission

from chat.domain import records
from chat.domain.access import can_user_access
from chat.domain.models import Membership, Message, Room
from crm.models import Deal
from tests.factories import access_token, make_user
from tests.test_team_chat import api, rest
from tests.ws import assert_rejected, joined, room_path

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def deal(alice, bob):
    deal = Deal.objects.create(title="Implantação ACME", owner=alice, stage=Deal.Stage.PROPOSAL)
    deal.team.set([bob])
    return deal


def members(room) -> list[str]:
    return sorted(Membership.objects.filter(room=room).values_list("user__username", flat=True))


def record_room_url(deal) -> str:
    return f"/api/chat/records/crm.deal/{deal.pk}/room/"


class GroupPolicy:
    """A second model's own policy: a group's room is its members'."""

    def can_view(self, user, group) -> bool:
        return user.is_active and group.user_set.filter(pk=user.pk).exists()

    def users_with_access(self, group):
        return group.user_set.all()


# --- the room of a record ------------------------------------------------------------------


def test_a_records_room_is_made_once_with_whoever_may_see_the_record(deal, alice, bob, outsider):
    first = api(alice).get(record_room_url(deal))
    again = api(bob).get(record_room_url(deal))

    assert first.status_code == 200, first.content
    body = first.json()
    assert again.json()["id"] == body["id"]
    assert body["type"] == "record" and body["read_only"] is False
    assert body["record"] == {"type": "crm.deal", "id": str(deal.pk), "label": str(deal)}
    assert Room.objects.filter(type=Room.Type.RECORD).count() == 1
    assert members(Room.objects.get(pk=body["id"])) == ["alice", "bob"]
    listed = api(bob).get("/api/chat/rooms/").json()
    assert [r["record"] for r in listed if r["id"] == body["id"]] == [body["record"]]


@pytest.mark.parametrize(
    "path",
    [
        "crm.deal/999999",  # no such deal
        "crm.nothing/1",  # no such model
        "nothing/1",  # not "app.model"
        "crm.deal/not-a-number",
    ],
)
def test_an_unknown_record_is_not_found(alice, path):
    response = api(alice).get(f"/api/chat/records/{path}/room/")
    assert (response.status_code, response.json()["code"]) == (404, "record_not_found")


def test_a_user_the_policy_does_not_let_in_cannot_tell_the_record_exists(deal, outsider):
    response = api(outsider).get(record_room_url(deal))
    assert (response.status_code, response.json()["code"]) == (404, "record_not_found")
    assert not Room.objects.filter(type=Room.Type.RECORD).exists(), "no room made for them"


def test_a_records_members_cannot_be_changed_by_hand(deal, alice, outsider):
    room = records.room_for_record(deal)
    response = api(alice).post(
        f"/api/chat/rooms/{room.pk}/members/", {"user_id": outsider.pk}, format="json"
    )
    assert (response.status_code, response.json()["code"]) == (403, "not_allowed")


# --- access that follows the record --------------------------------------------------------


async def test_the_old_owner_is_closed_out_at_once_and_the_new_one_let_in(deal, alice, bob):
    carla = await sync_to_async(make_user)("carla")
    room = await sync_to_async(records.room_for_record)(deal)
    alice_socket = await joined(room_path(room), token=access_token(alice))

    changed = await rest(alice, "patch", f"/api/crm/deals/{deal.pk}/", {"owner": carla.pk})

    assert changed.status_code == 200, changed.content
    added = await alice_socket.receive_json_from()
    assert (added["type"], added["user"]["username"]) == ("member.added", "carla")
    await assert_rejected(alice_socket, "removed_from_room", 4403)
    history = await rest(alice, "get", f"/api/chat/rooms/{room.pk}/messages/")
    assert history.status_code == 404
    rooms = await rest(carla, "get", "/api/chat/rooms/")
    assert [r["id"] for r in rooms.json()] == [str(room.pk)]
    assert await sync_to_async(members)(room) == ["bob", "carla"]


def test_can_user_access_asks_the_policy_of_a_records_room(deal, alice, bob):
    room = records.room_for_record(deal)
    assert can_user_access(bob, room)
    Deal.team.through.objects.filter(deal=deal).delete()  # no signal: a change never reported
    assert "bob" in members(room), "the memberships did not hear of it"
    assert not can_user_access(bob, room), "the policy did"


def test_joining_the_team_lets_a_user_in(deal, outsider):
    room = records.room_for_record(deal)
    deal.team.add(outsider)
    assert "outsider" in members(room)
    deal.team.remove(outsider)
    assert "outsider" not in members(room)


def test_any_model_with_its_own_policy(settings, alice, bob):
    settings.CHAT_RECORD_ACCESS_POLICIES = {"auth.group": "tests.test_records.GroupPolicy"}
    group = Group.objects.create(name="Suporte N2")
    group.user_set.add(alice)
    room = records.room_for_record(group)
    assert members(room) == ["alice"]

    group.user_set.add(bob)  # not a followed model: the CRM reports the change itself
    assert records.room_access_changed(group) == records.AccessChange((bob.pk,), ())
    assert members(room) == ["alice", "bob"]
    assert api(bob).get(f"/api/chat/records/auth.group/{group.pk}/room/").status_code == 200


def test_the_default_policy_is_djangos_view_permission(alice, bob, outsider):
    group = Group.objects.create(name="Diretoria")
    bob.user_permissions.add(Permission.objects.get(codename="view_group"))
    superuser = make_user("root", is_superuser=True)

    room = records.room_for_record(group)

    assert members(room) == ["bob", "root"]
    assert records.PermissionPolicy().can_view(superuser, group)
    assert not records.PermissionPolicy().can_view(outsider, group)


# --- closed records and system messages ----------------------------------------------------


async def test_a_won_deal_says_so_in_its_room_and_closes_it_to_new_messages(deal, alice, bob):
    room = await sync_to_async(records.room_for_record)(deal)
    bob_socket = await joined(room_path(room), token=access_token(bob))

    await rest(alice, "patch", f"/api/crm/deals/{deal.pk}/", {"stage": "won"})

    told = await bob_socket.receive_json_from()
    assert (told["type"], told["kind"]) == ("chat.message", "system")
    closed = await bob_socket.receive_json_from()
    assert (closed["type"], closed["room"]["read_only"]) == ("room.updated", True)
    assert told["message"] == "etapa alterada: proposal → won"
    assert told["data"] == {"event": "stage_changed", "from": "proposal", "to": "won"}
    await bob_socket.send_json_to({"type": "chat.message", "message": "e agora?"})
    refused = await bob_socket.receive_json_from()
    assert (refused["type"], refused["code"]) == ("error", "room_read_only")
    posted = await rest(bob, "post", f"/api/chat/rooms/{room.pk}/messages/", {"message": "oi"})
    assert (posted.status_code, posted.json()["code"]) == (409, "room_read_only")
    history = await rest(bob, "get", f"/api/chat/rooms/{room.pk}/messages/")
    assert [m["kind"] for m in history.json()["results"]] == ["system"]
    await bob_socket.disconnect()


def test_a_reopened_deal_takes_messages_again(deal, alice):
    room = records.room_for_record(deal)
    for stage in ("lost", "negotiation"):
        response = api(alice).patch(f"/api/crm/deals/{deal.pk}/", {"stage": stage}, format="json")
        assert response.status_code == 200
    posted = api(alice).post(f"/api/chat/rooms/{room.pk}/messages/", {"message": "retomando"})
    assert posted.status_code == 201, posted.content
    texts = list(Message.objects.filter(room=room).values_list("kind", "text"))
    assert texts == [
        ("system", "etapa alterada: proposal → lost"),
        ("system", "etapa alterada: lost → negotiation"),
        ("user", "retomando"),
    ]


def test_a_renamed_deal_renames_its_room(deal, alice):
    room = records.room_for_record(deal)
    api(alice).patch(f"/api/crm/deals/{deal.pk}/", {"title": "ACME fase 2"}, format="json")
    room.refresh_from_db()
    assert (room.name, room.record_label) == ("Negócio: ACME fase 2", "Negócio: ACME fase 2")


async def test_a_deleted_deals_room_closes_on_everyone(deal, alice, bob):
    room = await sync_to_async(records.room_for_record)(deal)
    bob_socket = await joined(room_path(room), token=access_token(bob))

    await sync_to_async(deal.delete)()

    others = await bob_socket.receive_json_from()
    assert (others["type"], others["user"]["id"]) == ("member.removed", alice.pk)
    await assert_rejected(bob_socket, "removed_from_room", 4403)
    stored = await Room.objects.aget(pk=room.pk)
    assert stored.read_only and not await Membership.objects.filter(room=room).aexists()


def test_a_deal_nobody_talked_about_gets_no_room_from_its_changes(deal, alice):
    deal.stage = Deal.Stage.WON
    deal.save()
    assert not Room.objects.filter(type=Room.Type.RECORD).exists()


def test_system_messages_are_ordered_with_the_others_and_authored_by_no_member(deal, alice):
    room = records.room_for_record(deal)
    api(alice).post(f"/api/chat/rooms/{room.pk}/messages/", {"message": "antes"})
    records.system_message_post(deal, "proposta enviada", {"event": "proposal_sent"})
    api(alice).post(f"/api/chat/rooms/{room.pk}/messages/", {"message": "depois"})

    page = api(alice).get(f"/api/chat/rooms/{room.pk}/messages/").json()["results"]
    assert [m["message"] for m in page] == ["antes", "proposta enviada", "depois"]
    system = page[1]
    assert system["user"]["username"] == records.SYSTEM_USERNAME
    assert not Membership.objects.filter(room=room, user_id=system["user"]["id"]).exists()
    login = api().post(
        "/api/auth/token/", {"username": records.SYSTEM_USERNAME, "password": ""}, format="json"
    )
    assert login.status_code in (400, 401), "the system user cannot log in"


# --- what a review found (each failed before its fix) ------------------------------------


def test_joining_the_team_from_the_users_side_lets_them_in(deal, outsider):
    room = records.room_for_record(deal)
    outsider.deals.add(deal)
    assert "outsider" in members(room)


def test_leaving_the_team_from_the_users_side_closes_them_out(deal, bob):
    room = records.room_for_record(deal)
    bob.deals.remove(deal)
    assert "bob" not in members(room)
    assert api(bob).get(f"/api/chat/rooms/{room.pk}/messages/").status_code == 404


def test_clearing_a_users_deals_closes_them_out(deal, bob):
    room = records.room_for_record(deal)
    bob.deals.clear()
    assert "bob" not in members(room)


def test_a_room_opened_for_an_already_won_deal_is_read_only(deal, alice):
    deal.stage = Deal.Stage.WON
    deal.save()
    response = api(alice).get(f"/api/chat/records/crm.deal/{deal.pk}/room/")
    assert response.status_code == 200
    room_id = response.json()["id"]
    posted = api(alice).post(f"/api/chat/rooms/{room_id}/messages/", {"message": "ainda aberto?"})
    assert posted.status_code == 409, posted.content


def test_a_manager_who_loses_the_view_permission_loses_the_room(deal, alice):
    manager = make_user("gerente")
    manager.user_permissions.add(Permission.objects.get(codename="view_deal"))
    room = records.room_for_record(deal)
    assert "gerente" in members(room)
    manager.user_permissions.clear()
    manager = type(manager).objects.get(pk=manager.pk)  # fresh permission cache
    assert "gerente" not in members(room)
    assert not can_user_access(manager, room)
    history = api(manager).get(f"/api/chat/rooms/{room.pk}/messages/")
    assert history.status_code == 404


def test_a_late_access_recompute_uses_the_record_as_stored(deal, alice):
    carla, dave = make_user("carla"), make_user("dave")
    room = records.room_for_record(deal)
    first, second = Deal.objects.get(pk=deal.pk), Deal.objects.get(pk=deal.pk)
    first.owner = carla
    first.save()
    second.owner = dave
    second.save()
    assert members(room) == ["bob", "dave"]
    records.room_access_changed(first)  # A's callback, run after B's (two requests)
    assert members(room) == ["bob", "dave"], "the stored owner is dave"


def test_a_save_that_does_not_store_the_stage_announces_no_stage_change(deal, alice):
    room = records.room_for_record(deal)
    deal.stage = Deal.Stage.WON
    deal.title = "novo título"
    deal.save(update_fields=["title"])
    assert Deal.objects.get(pk=deal.pk).stage == Deal.Stage.PROPOSAL
    room.refresh_from_db()
    assert not room.read_only


def test_the_system_user_is_not_an_account_someone_can_log_in_with(deal):
    make_user(records.SYSTEM_USERNAME)  # active, with a password
    with pytest.raises(RuntimeError, match="reserved"):
        records.system_message_post(deal, "etapa alterada")


class ObjectPermissionBackend:
    """What django-guardian or django-rules do: permissions on one object (here: a group
    named "Suporte" is viewable by the users in OBJECT_VIEWERS), and no way to list them."""

    def authenticate(self, request, **credentials):
        return None

    def has_perm(self, user, permission, obj=None) -> bool:
        return (
            obj is not None
            and permission == "auth.view_group"
            and obj.name == "Suporte"
            and user.username in OBJECT_VIEWERS
        )


OBJECT_VIEWERS: set[str] = set()


def test_the_default_policy_takes_object_permissions_a_backend_cannot_list(settings, bob):
    settings.AUTHENTICATION_BACKENDS = [
        *settings.AUTHENTICATION_BACKENDS,
        "tests.test_records.ObjectPermissionBackend",
    ]
    carla = make_user("carla")
    group = Group.objects.create(name="Suporte")
    OBJECT_VIEWERS.add("carla")
    try:
        url = f"/api/chat/records/auth.group/{group.pk}/room/"
        assert api(carla).get(url).status_code == 200
        assert api(bob).get(url).status_code == 404
        room = records.room_of_record(group)
        records.room_access_changed(group)
        assert members(room) == ["carla"], "kept while the backend says yes"

        OBJECT_VIEWERS.discard("carla")
        records.room_access_changed(group)
        assert members(room) == []
        assert api(carla).get(url).status_code == 404
    finally:
        OBJECT_VIEWERS.clear()
