"""Management commands: the demo data of PROTOCOL.md and the original room listing."""

from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command

from chat.domain.models import Membership, Room

DEMO_PASSWORD = "demo-pass-for-tests-42"
OTHER_USERS = {"maria", "joao", "ana", "carlos", "fernanda", "pedro"}


@pytest.fixture
def seeded(db, settings):
    settings.DEMO_PASSWORD = DEMO_PASSWORD
    call_command("seed_demo", stdout=StringIO())


def snapshot() -> dict:
    """Everything seed_demo writes, in a form two runs can be compared by."""
    users = get_user_model().objects.order_by("pk")
    return {
        "users": list(users.values_list("pk", "username", "password", "is_superuser")),
        "rooms": list(Room.objects.order_by("pk").values_list("pk", "name", "type")),
        "memberships": list(
            Membership.objects.order_by("pk").values_list("pk", "room", "user", "role")
        ),
    }


def test_seed_demo_creates_admin_and_six_users(seeded):
    users = get_user_model().objects.all()

    assert {user.username for user in users} == {"admin"} | OTHER_USERS
    assert [user.username for user in users if user.is_superuser] == ["admin"]


@pytest.mark.parametrize("username", ["admin", *sorted(OTHER_USERS)])
def test_seed_demo_users_log_in_with_demo_password(seeded, username):
    assert authenticate(username=username, password=DEMO_PASSWORD) is not None
    assert authenticate(username=username, password="wrong-password") is None


def test_seed_demo_management_room_has_all_seven(seeded):
    room = Room.objects.get(name="Chat - Gerência")

    assert room.type == "community"
    members = set(room.memberships.values_list("user__username", flat=True))
    assert members == {"admin"} | OTHER_USERS


def test_seed_demo_creates_a_second_smaller_room(seeded):
    [other] = Room.objects.exclude(name="Chat - Gerência").exclude(type=Room.Type.RECORD)

    assert 1 < other.memberships.count() < 7


@pytest.mark.parametrize("room_name", ["Chat - Gerência", "Chat - Vendas"])
def test_seed_demo_admin_is_room_admin(seeded, room_name):
    roles = dict(
        Membership.objects.filter(room__name=room_name).values_list("user__username", "role")
    )

    assert roles.pop("admin") == "admin"
    assert set(roles.values()) == {"member"}


def test_seed_demo_twice_changes_nothing(seeded):
    before = snapshot()

    call_command("seed_demo", stdout=StringIO())

    assert snapshot() == before
    assert len(before["users"]) == 7
    assert len(before["rooms"]) == 4, "two rooms and two deals' rooms"


def test_seed_demo_deals_have_rooms_of_their_owners_and_teams(seeded):
    rooms = Room.objects.filter(type=Room.Type.RECORD).order_by("name")

    assert [(room.record_label, room.record_type.model) for room in rooms] == [
        ("Negócio: Implantação ACME", "deal"),
        ("Negócio: Renovação Beta Ltda", "deal"),
    ]
    assert [
        sorted(room.memberships.values_list("user__username", flat=True)) for room in rooms
    ] == [
        ["admin", "joao", "maria"],
        ["admin", "ana", "carlos"],
    ]


def test_list_chat_rooms_prints_the_original_format(seeded):
    management = Room.objects.get(name="Chat - Gerência")
    sales = Room.objects.get(name="Chat - Vendas")
    Room.objects.filter(type=Room.Type.RECORD).delete()  # the original knew no deals
    out = StringIO()

    call_command("list_chat_rooms", stdout=out)

    assert out.getvalue() == (
        "=== SALAS DE CHAT DISPONÍVEIS ===\n"
        f"ID: {management.pk}\n"
        "Nome: Chat - Gerência\n"
        "Tipo: community\n"
        "Membros: 7\n"
        "\n"
        f"ID: {sales.pk}\n"
        "Nome: Chat - Vendas\n"
        "Tipo: group\n"
        "Membros: 3\n"
    )
