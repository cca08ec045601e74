"""The HTTP API as a client sees it: status codes, JSON bodies and the rows left behind."""

from __future__ import annotations

import re
import uuid

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from rest_framework.test import APIClient

from chat.domain.access import can_user_access
from chat.domain.models import Membership, Message, Room
from tests.factories import PASSWORD, access_token, make_room, make_user, refresh_token

MESSAGE_FIELDS = {
    "type",
    "id",
    "room",
    "message",
    "user",
    "created_at",
    "client_id",
    "edited_at",
    "deleted",
    "reply_to",
    "reply_count",
    "last_reply_at",
    "change_seq",
    "mentions",
    "attachments",
    "reactions",
    "kind",
    "data",
}


@pytest.fixture(autouse=True)
def no_throttle_carryover():
    """The login throttle counts in the cache; a fresh count per test keeps tests independent."""
    cache.clear()
    yield
    cache.clear()


def client_for(user=None) -> APIClient:
    """An API client sending `user`'s JWT access token (anonymous when `user` is None)."""
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token(user)}")
    return client


def add_messages(room: Room, author, count: int, *, prefix: str = "m") -> list[int]:
    """Store `count` more messages in `room`; returns the ids of all its messages, oldest first."""
    Message.objects.bulk_create(
        Message(room=room, author=author, text=f"{prefix}{n}") for n in range(count)
    )
    return list(Message.objects.filter(room=room).order_by("id").values_list("id", flat=True))


def history(client: APIClient, room: Room, query: str = ""):
    return client.get(f"/api/chat/rooms/{room.pk}/messages/?{query}")


def ids_of(response) -> list[int]:
    return [item["id"] for item in response.json()["results"]]


# --- auth


def test_token_obtain_with_good_credentials_returns_access_and_refresh(alice):
    response = APIClient().post(
        "/api/auth/token/", {"username": "alice", "password": PASSWORD}, format="json"
    )

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access", "refresh"}
    me = APIClient()
    me.credentials(HTTP_AUTHORIZATION=f"Bearer {body['access']}")
    assert me.get("/api/auth/me/").json()["username"] == "alice"


@pytest.mark.parametrize(
    ("username", "password", "status"),
    [("alice", "wrong-password", 401), ("nobody", PASSWORD, 401), ("alice", "", 400)],
    ids=["wrong-password", "unknown-user", "empty-password"],
)
def test_token_obtain_with_bad_credentials_is_rejected(alice, username, password, status):
    response = APIClient().post(
        "/api/auth/token/", {"username": username, "password": password}, format="json"
    )

    assert response.status_code == status
    assert "access" not in response.json()


def test_token_obtain_for_inactive_user_is_401(db):
    make_user("sleeper", is_active=False)

    response = APIClient().post(
        "/api/auth/token/", {"username": "sleeper", "password": PASSWORD}, format="json"
    )

    assert response.status_code == 401


def test_token_refresh_returns_a_working_access_token(alice):
    response = APIClient().post(
        "/api/auth/token/refresh/", {"refresh": refresh_token(alice)}, format="json"
    )

    assert response.status_code == 200
    access = response.json()["access"]
    me = APIClient()
    me.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    assert me.get("/api/auth/me/").json()["id"] == alice.pk


def test_token_refresh_with_an_access_token_is_401(alice):
    response = APIClient().post(
        "/api/auth/token/refresh/", {"refresh": access_token(alice)}, format="json"
    )

    assert response.status_code == 401
    assert "access" not in response.json()


def test_me_returns_the_token_owner(db):
    user = make_user("maria", first_name="Maria", last_name="Silva", email="maria@example.com")

    response = client_for(user).get("/api/auth/me/")

    assert response.status_code == 200
    assert response.json() == {
        "id": user.pk,
        "username": "maria",
        "first_name": "Maria",
        "last_name": "Silva",
        "email": "maria@example.com",
    }


def test_me_with_the_token_of_a_deactivated_user_is_401(alice):
    client = client_for(alice)
    alice.is_active = False
    alice.save(update_fields=["is_active"])

    assert client.get("/api/auth/me/").status_code == 401


def test_me_with_a_garbage_token_is_401(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer not-a-jwt")

    assert client.get("/api/auth/me/").status_code == 401


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/auth/me/"),
        ("get", "/api/chat/rooms/"),
        ("post", "/api/chat/rooms/"),
        ("get", "/api/chat/rooms/{room}/"),
        ("get", "/api/chat/rooms/{room}/messages/"),
        ("post", "/api/chat/rooms/{room}/members/"),
        ("delete", "/api/chat/rooms/{room}/members/{bob}/"),
    ],
)
def test_api_without_token_is_401(room, bob, method, path):
    url = path.format(room=room.pk, bob=bob.pk)

    response = getattr(APIClient(), method)(url, {}, format="json")

    assert response.status_code == 401
    assert Membership.objects.filter(room=room, user=bob).exists()


# --- rooms


def test_room_list_shows_only_the_users_rooms_with_member_count(alice, bob, outsider):
    carol = make_user("carol")
    team = make_room(admins=[alice], members=[bob, carol], name="Equipe")
    solo = make_room(admins=[alice], name="Anotações")
    make_room(admins=[outsider], members=[bob], name="Outra")

    response = client_for(alice).get("/api/chat/rooms/")

    assert response.status_code == 200
    counts = {item["id"]: item["member_count"] for item in response.json()}
    assert counts == {str(team.pk): 3, str(solo.pk): 1}


@pytest.mark.parametrize("viewer", ["alice", "bob", "carol"])
def test_room_list_member_count_is_the_same_for_every_member(alice, bob, viewer):
    """Each member sees all 3 members, not just the row of its own membership."""
    carol = make_user("carol")
    users = {"alice": alice, "bob": bob, "carol": carol}
    make_room(admins=[alice], members=[bob, carol], name="Equipe")

    body = client_for(users[viewer]).get("/api/chat/rooms/").json()

    assert [(item["name"], item["member_count"]) for item in body] == [("Equipe", 3)]


def test_room_list_last_message_is_null_then_the_newest_message(room, alice, bob):
    client = client_for(bob)
    assert client.get("/api/chat/rooms/").json()[0]["last_message"] is None

    Message.objects.create(room=room, author=alice, text="primeira")
    newest = Message.objects.create(room=room, author=bob, text="segunda", client_id="c-2")
    last = client.get("/api/chat/rooms/").json()[0]["last_message"]

    assert last["id"] == newest.pk
    assert last["message"] == "segunda"
    assert last["user"] == {"id": bob.pk, "username": "bob"}
    assert last["room"] == str(room.pk)
    assert last["client_id"] == "c-2"
    assert last["type"] == "chat.message"
    assert set(last) == MESSAGE_FIELDS


def test_room_list_last_message_belongs_to_each_room(alice):
    first = make_room(admins=[alice], name="A")
    second = make_room(admins=[alice], name="B")
    Message.objects.create(room=first, author=alice, text="a1")
    Message.objects.create(room=second, author=alice, text="b1")
    Message.objects.create(room=first, author=alice, text="a2")

    body = client_for(alice).get("/api/chat/rooms/").json()

    assert {item["name"]: item["last_message"]["message"] for item in body} == {
        "A": "a2",
        "B": "b1",
    }


def test_room_create_makes_the_creator_its_admin(alice):
    response = client_for(alice).post(
        "/api/chat/rooms/", {"name": "Suporte", "type": "group"}, format="json"
    )

    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "Suporte"
    assert body["type"] == "group"
    assert body["member_count"] == 1
    assert [(m["id"], m["username"], m["role"]) for m in body["members"]] == [
        (alice.pk, "alice", "admin")
    ]
    room = Room.objects.get(pk=body["id"])
    assert list(room.memberships.values_list("user__username", "role")) == [("alice", "admin")]


@pytest.mark.parametrize(
    ("payload", "bad_field"),
    [
        ({"name": "Suporte", "type": "secret"}, "type"),
        ({"name": "Suporte", "type": ""}, "type"),
        ({"type": "group"}, "name"),
        ({"name": "", "type": "group"}, "name"),
    ],
    ids=["unknown-type", "empty-type", "no-name", "empty-name"],
)
def test_room_create_with_invalid_body_is_400(alice, payload, bad_field):
    response = client_for(alice).post("/api/chat/rooms/", payload, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert bad_field in response.json()["fields"]
    assert not Room.objects.exists()


def test_room_detail_lists_members_with_roles(room, alice, bob):
    response = client_for(bob).get(f"/api/chat/rooms/{room.pk}/")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(room.pk)
    assert body["name"] == "Chat - Gerência"
    assert body["type"] == "community"
    assert body["member_count"] == 2
    members = sorted((m["id"], m["username"], m["role"]) for m in body["members"])
    assert members == sorted([(alice.pk, "alice", "admin"), (bob.pk, "bob", "member")])


def test_room_detail_for_a_non_member_is_404(room, outsider):
    response = client_for(outsider).get(f"/api/chat/rooms/{room.pk}/")

    assert response.status_code == 404
    assert "members" not in response.json()


def test_room_detail_for_an_unknown_room_is_404(alice):
    assert client_for(alice).get(f"/api/chat/rooms/{uuid.uuid4()}/").status_code == 404


# --- history


def test_history_item_has_the_chat_message_frame_fields(room, alice, bob):
    message = Message.objects.create(room=room, author=alice, text="Olá, equipe", client_id="c-42")

    response = history(client_for(bob), room)

    assert response.status_code == 200
    [item] = response.json()["results"]
    assert set(item) == MESSAGE_FIELDS
    assert item["type"] == "chat.message"
    assert item["id"] == message.pk
    assert item["room"] == str(room.pk)
    assert item["message"] == "Olá, equipe"
    assert item["user"] == {"id": alice.pk, "username": "alice"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", item["created_at"])
    assert item["client_id"] == "c-42"
    assert response.json()["has_more"] is False


def test_history_is_oldest_first_and_only_this_rooms_messages(room, alice, bob):
    other = make_room(admins=[alice], name="Outra")
    Message.objects.create(room=room, author=alice, text="um")
    Message.objects.create(room=other, author=alice, text="alheia")
    Message.objects.create(room=room, author=bob, text="dois")
    Message.objects.create(room=room, author=alice, text="três")

    body = history(client_for(bob), room).json()

    assert [item["message"] for item in body["results"]] == ["um", "dois", "três"]
    assert body["has_more"] is False


def test_history_default_limit_is_50_newest_with_has_more(room, alice, bob):
    ids = add_messages(room, alice, 120)

    body = history(client_for(bob), room).json()

    assert [item["id"] for item in body["results"]] == ids[-50:]
    assert body["has_more"] is True


def test_history_before_pages_back_to_the_start_without_gaps(room, alice, bob, outsider):
    """120 messages, interleaved with another room's, paged back 50 at a time."""
    other = make_room(admins=[outsider], name="Outra")
    add_messages(other, outsider, 7)
    add_messages(room, alice, 60)
    add_messages(other, outsider, 7)
    ids = add_messages(room, alice, 60)
    client = client_for(bob)

    pages, query = [], "limit=50"
    while True:
        body = history(client, room, query).json()
        pages.append(body)
        if not body["has_more"]:
            break
        query = f"limit=50&before={body['results'][0]['id']}"

    assert [len(page["results"]) for page in pages] == [50, 50, 20]
    collected = [item["id"] for page in reversed(pages) for item in page["results"]]
    assert collected == ids


def test_history_after_pages_forward_to_the_end_without_gaps(room, alice, bob, outsider):
    other = make_room(admins=[outsider], name="Outra")
    add_messages(room, alice, 60)
    add_messages(other, outsider, 7)
    ids = add_messages(room, alice, 60)
    client = client_for(bob)

    pages, query = [], "after=0&limit=50"
    while True:
        body = history(client, room, query).json()
        pages.append(body)
        if not body["has_more"]:
            break
        query = f"after={body['results'][-1]['id']}&limit=50"

    assert [len(page["results"]) for page in pages] == [50, 50, 20]
    assert [item["id"] for page in pages for item in page["results"]] == ids


def test_history_after_the_newest_message_is_empty(room, alice, bob):
    ids = add_messages(room, alice, 3)

    body = history(client_for(bob), room, f"after={ids[-1]}").json()

    assert body == {"results": [], "has_more": False}


def test_history_after_recovers_only_the_missed_messages(room, alice, bob):
    ids = add_messages(room, alice, 10)

    body = history(client_for(bob), room, f"after={ids[6]}").json()

    assert [item["id"] for item in body["results"]] == ids[7:]
    assert body["has_more"] is False


@pytest.mark.parametrize(("limit", "expected"), [(500, 200), (200, 200), (7, 7), (1, 1)])
def test_history_limit_is_capped_at_200(room, alice, bob, limit, expected):
    ids = add_messages(room, alice, 210)

    body = history(client_for(bob), room, f"limit={limit}").json()

    assert [item["id"] for item in body["results"]] == ids[-expected:]
    assert body["has_more"] is True


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("after=abc", "after"),
        ("after=-1", "after"),
        ("limit=-1", "limit"),
        ("limit=0", "limit"),
        ("limit=many", "limit"),
        ("before=xyz", "before"),
        ("before=0", "before"),
    ],
)
def test_history_with_a_bad_parameter_is_400_naming_it(room, bob, query, parameter):
    response = history(client_for(bob), room, query)

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_request" and body["detail"].startswith(f"{parameter}: ")
    fields = body["fields"]
    assert fields[parameter] and all(isinstance(text, str) and text for text in fields[parameter])


def test_history_for_a_non_member_is_404(room, alice, outsider):
    add_messages(room, alice, 3)

    response = history(client_for(outsider), room)

    assert response.status_code == 404
    assert "results" not in response.json()


def test_history_for_an_unknown_room_is_404(alice):
    response = client_for(alice).get(f"/api/chat/rooms/{uuid.uuid4()}/messages/")

    assert response.status_code == 404


# --- membership


def members_url(room: Room, user_id: int | None = None) -> str:
    base = f"/api/chat/rooms/{room.pk}/members/"
    return base if user_id is None else f"{base}{user_id}/"


def test_member_add_by_admin_is_201_then_200(room, alice, outsider):
    client = client_for(alice)

    first = client.post(members_url(room), {"user_id": outsider.pk}, format="json")
    again = client.post(members_url(room), {"user_id": outsider.pk}, format="json")

    assert first.status_code == 201
    assert first.json() == {"id": outsider.pk, "username": "outsider", "role": "member"}
    assert again.status_code == 200
    assert Membership.objects.filter(room=room, user=outsider).count() == 1
    assert can_user_access(outsider, room) is True


def test_member_add_gives_the_new_member_the_room(room, alice, outsider):
    client_for(alice).post(members_url(room), {"user_id": outsider.pk}, format="json")

    response = client_for(outsider).get(f"/api/chat/rooms/{room.pk}/messages/")

    assert response.status_code == 200


def test_member_add_again_keeps_the_existing_role(room, alice):
    response = client_for(alice).post(members_url(room), {"user_id": alice.pk}, format="json")

    assert response.status_code == 200
    assert response.json()["role"] == "admin"
    assert Membership.objects.get(room=room, user=alice).role == "admin"


def test_member_add_by_a_plain_member_is_403(room, bob, outsider):
    response = client_for(bob).post(members_url(room), {"user_id": outsider.pk}, format="json")

    assert response.status_code == 403
    assert not Membership.objects.filter(room=room, user=outsider).exists()


def test_member_add_by_a_non_member_is_404(room, outsider):
    response = client_for(outsider).post(members_url(room), {"user_id": outsider.pk}, format="json")

    assert response.status_code == 404
    assert not Membership.objects.filter(room=room, user=outsider).exists()


def test_member_add_of_an_unknown_user_is_404(room, alice):
    response = client_for(alice).post(members_url(room), {"user_id": 987654}, format="json")

    assert response.status_code == 404
    assert Membership.objects.filter(room=room).count() == 2


def test_member_add_without_user_id_is_400(room, alice):
    response = client_for(alice).post(members_url(room), {}, format="json")

    assert response.status_code == 400
    assert "user_id" in response.json()["fields"]


def test_member_remove_by_admin_is_204_and_the_row_is_gone(room, alice, bob):
    response = client_for(alice).delete(members_url(room, bob.pk))

    assert response.status_code == 204
    assert not Membership.objects.filter(room=room, user=bob).exists()
    assert client_for(bob).get(f"/api/chat/rooms/{room.pk}/").status_code == 404


def test_member_remove_of_a_non_member_is_404(room, alice, outsider):
    response = client_for(alice).delete(members_url(room, outsider.pk))

    assert response.status_code == 404
    assert Membership.objects.filter(room=room).count() == 2


def test_member_remove_by_a_plain_member_is_403(room, alice, bob):
    response = client_for(bob).delete(members_url(room, alice.pk))

    assert response.status_code == 403
    assert Membership.objects.filter(room=room, user=alice).exists()


def test_member_remove_by_a_non_member_is_404(room, bob, outsider):
    response = client_for(outsider).delete(members_url(room, bob.pk))

    assert response.status_code == 404
    assert Membership.objects.filter(room=room, user=bob).exists()


# --- the access rule


@pytest.mark.parametrize(
    ("who", "allowed"),
    [
        ("member", True),
        ("admin", True),
        ("non-member", False),
        ("inactive member", False),
        ("anonymous", False),
    ],
)
def test_can_user_access(db, who, allowed):
    admin, member, stranger = make_user(), make_user(), make_user()
    sleeper = make_user(is_active=False)
    room = make_room(admins=[admin], members=[member, sleeper])
    users = {
        "member": member,
        "admin": admin,
        "non-member": stranger,
        "inactive member": sleeper,
        "anonymous": AnonymousUser(),
    }

    assert can_user_access(users[who], room) is allowed


# --- schema and docs


def test_schema_is_openapi_and_describes_the_history_endpoint(db):
    response = APIClient().get("/api/schema/")

    assert response.status_code == 200
    text = response.content.decode()
    assert text.startswith("openapi: 3")
    assert "/api/chat/rooms/{room_id}/messages/" in text


def test_docs_page_loads_its_assets_from_static_not_a_cdn(db):
    response = APIClient().get("/api/docs/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert assets, "the docs page should load swagger-ui assets"
    assert all(asset.startswith("/static/") for asset in assets), assets
    assert not re.search(r"https?://", html)


def test_login_attempts_past_the_rate_are_429_with_retry_after(alice):
    """LOGIN_THROTTLE_RATE (default 20/min per client): guessing passwords gets throttled."""
    client = APIClient()
    answers = [
        client.post("/api/auth/token/", {"username": "alice", "password": f"guess{n}"}).status_code
        for n in range(20)
    ]
    assert answers == [401] * 20
    throttled = client.post("/api/auth/token/", {"username": "alice", "password": PASSWORD})
    assert throttled.status_code == 429, "even the right password waits"
    assert int(throttled["Retry-After"]) > 0
    assert throttled.json()["code"] == "rate_limited", "the socket's code for the same thing"
    assert "access" not in throttled.json()
