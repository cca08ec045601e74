"""A user's data (issue 18, GDPR): `export_chat_user` writes every message, reaction and file
of a user as JSON; `erase_chat_user` anonymizes them without breaking rooms. Round trip:
export, erase, export again: nothing personal left, rooms page with `after=` as before."""

from __future__ import annotations

import io
import json

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from chat.domain import services
from chat.domain.models import (
    Attachment,
    Membership,
    Message,
    MessageRevision,
    Notification,
    NotificationSettings,
    Reaction,
    Room,
    RoomSequence,
)
from tests.factories import PASSWORD, access_token, make_room, make_user
from tests.test_retention import changes, history, picture, post
from tests.ws import assert_rejected, joined, room_path

pytestmark = pytest.mark.django_db

PERSONAL = ("Roberto", "Bobson", "bob@example.com", "segredo do bob", "versão antiga")


@pytest.fixture
def bob(db):
    return make_user("bob", first_name="Roberto", last_name="Bobson", email="bob@example.com")


@pytest.fixture
def story(room, alice, bob):
    """bob in a room with alice (messages, a file, an edit, a reply each way, reactions each
    way, a mention), in a direct room with her, and an upload he never sent."""
    first = post(room, bob, "segredo do bob", files=[picture("bob.png")])
    edited = post(room, bob, "versão antiga")
    services.message_edit(room=room, message_id=edited.pk, editor=bob, text="versão nova")
    hers = post(room, alice, "oi @bob", reply_to=first.pk)
    his_reply = post(room, bob, "respondendo à alice", reply_to=first.pk)
    services.reaction_add(room=room, message_id=hers.pk, user=bob, emoji="👍")
    services.reaction_add(room=room, message_id=first.pk, user=alice, emoji="🎉")
    direct, _ = services.direct_room_get_or_create(user=alice, other=bob)
    in_direct = post(direct, bob, "só entre nós")
    NotificationSettings.objects.create(user=bob, email_digests=False)
    unsent = Attachment.objects.create(
        room=room, uploader=bob, name="rascunho.txt", content_type="text/plain", size=1
    )
    unsent.file.save("upload", io.BytesIO(b"x"))
    return {
        "room": room,
        "direct": direct,
        "bob": [first, edited, his_reply, in_direct],
        "alice": [hers],
        "unsent": unsent,
    }


def export(user_reference, tmp_path, *files) -> dict:
    target = tmp_path / "export.json"
    extra = ["--include-files", str(tmp_path / "files")] if files else []
    call_command("export_chat_user", str(user_reference), "--output", str(target), *extra)
    return json.loads(target.read_text(encoding="utf-8"))


def erase(user_reference) -> str:
    out = io.StringIO()
    call_command("erase_chat_user", str(user_reference), "--yes", stdout=out)
    return out.getvalue()


def test_the_export_has_every_message_reaction_and_file_of_the_user(story, bob, tmp_path):
    room, direct = story["room"], story["direct"]
    first, edited, his_reply, in_direct = story["bob"]

    data = export("bob", tmp_path, "files")

    assert data["format"] == "chat-user-export/1"
    assert data["user"]["username"] == "bob" and data["user"]["email"] == "bob@example.com"
    messages = {item["id"]: item for item in data["messages"]}
    assert list(messages) == [first.pk, edited.pk, his_reply.pk, in_direct.pk]
    assert messages[first.pk]["room"] == {"id": str(room.pk), "name": room.name}
    assert messages[first.pk]["text"] == "segredo do bob"
    assert messages[first.pk]["attachments"][0]["name"] == "bob.png"
    assert messages[edited.pk]["text"] == "versão nova" and messages[edited.pk]["edited_at"]
    assert messages[his_reply.pk]["reply_to"] == first.pk
    assert messages[in_direct.pk]["room"]["id"] == str(direct.pk)
    assert not any(item["deleted"] for item in data["messages"])
    assert [r["previous_text"] for r in data["revisions"]] == ["versão antiga"]
    assert [(r["message_id"], r["emoji"]) for r in data["reactions"]] == [
        (story["alice"][0].pk, "👍")
    ]
    assert {item["name"] for item in data["attachments"]} == {"bob.png", "rascunho.txt"}
    assert data["notification_settings"] == {"email_digests": False}
    assert {m["room"]["id"] for m in data["memberships"]} == {str(room.pk), str(direct.pk)}
    kinds = {n["kind"] for n in data["notifications"]}
    assert kinds == {"mention"}, "alice's @bob"
    copied = {item["name"]: tmp_path / "files" / item["file"] for item in data["attachments"]}
    stored = Attachment.objects.get(name="bob.png")
    assert copied["bob.png"].read_bytes() == stored.file.open("rb").read()
    assert copied["rascunho.txt"].read_bytes() == b"x"


def test_the_export_goes_to_standard_output_as_json_too(story):
    out = io.StringIO()

    call_command("export_chat_user", "bob", stdout=out)

    assert len(json.loads(out.getvalue())["messages"]) == 4


def test_erasure_then_export_shows_nothing_personal(story, bob, tmp_path):
    erase("bob")

    data = export(bob.pk, tmp_path)

    text = json.dumps(data, ensure_ascii=False)
    for personal in (*PERSONAL, "só entre nós", "bob.png", "rascunho", '"bob"'):
        assert personal not in text, personal
    assert data["user"]["username"] == f"deleted-user-{bob.pk}"
    assert (data["user"]["first_name"], data["user"]["email"]) == ("", "")
    assert all(item["deleted"] and item["text"] == "" for item in data["messages"])
    assert all(item["attachments"] == [] for item in data["messages"])
    assert len(data["messages"]) == 4, "tombstones: the ids stay"
    for section in ("reactions", "attachments", "notifications", "revisions"):
        assert data[section] == [], section
    [direct] = data["memberships"]
    assert direct["room"]["name"] == f"alice & deleted-user-{bob.pk}"


def test_after_erasure_rooms_page_gapless_and_other_peoples_messages_stay(story, alice, bob, room):
    ids_before = [item["id"] for item in history(alice, room)]
    mine = {message.pk for message in story["bob"]}
    hers = story["alice"][0]

    erase("bob")

    items = history(alice, room)
    assert [item["id"] for item in items] == ids_before, "every id, in order"
    assert ids_before == list(range(ids_before[0], ids_before[0] + len(ids_before)))
    for item in items:
        if item["id"] in mine:
            assert (item["deleted"], item["message"], item["reactions"]) == (True, "", [])
            assert item["user"]["username"] == f"deleted-user-{bob.pk}"
    [kept] = [item for item in items if item["id"] == hers.pk]
    assert (kept["message"], kept["reply_to"], kept["reactions"]) == (
        "oi @bob",
        story["bob"][0].pk,
        [],
    ), "alice's reply stays, bob's reaction on it goes"
    changed = {item["id"] for item in changes(alice, room)}
    assert mine - {story["bob"][3].pk} <= changed and hers.pk in changed
    direct = history(alice, story["direct"])
    assert [(item["deleted"], item["message"]) for item in direct] == [(True, "")]


def test_the_account_is_anonymized_and_can_no_longer_log_in(story, bob, room):
    output = erase("bob")

    account = get_user_model().objects.get(pk=bob.pk)
    assert account.username == f"deleted-user-{bob.pk}"
    assert (account.first_name, account.last_name, account.email) == ("", "", "")
    assert not account.is_active and not account.has_usable_password()
    assert authenticate(username="bob", password=PASSWORD) is None
    assert not Membership.objects.filter(user=bob, room=room).exists()
    assert Membership.objects.filter(user=bob, room=story["direct"]).exists(), "a pair stays"
    assert not Reaction.objects.filter(user=bob).exists()
    assert not Notification.objects.filter(user=bob).exists()
    assert not NotificationSettings.objects.filter(user=bob).exists()
    assert not Attachment.objects.filter(uploader=bob).exists()
    assert not MessageRevision.objects.filter(message__author=bob).exists()
    assert "4 messages" in output and "2 attachments" in output
    assert "segredo" not in output


def test_other_users_data_is_untouched(story, alice, bob):
    carla = make_user("carla")
    other = make_room(admins=[alice], members=[carla], name="Outra")
    theirs = post(other, carla, "nada a ver com o bob")
    services.reaction_add(room=other, message_id=theirs.pk, user=alice, emoji="👍")
    before = list(Message.objects.exclude(author=bob).order_by("id").values("id", "text"))

    erase("bob")

    assert list(Message.objects.exclude(author=bob).order_by("id").values("id", "text")) == before
    assert list(Reaction.objects.filter(user=alice).values_list("message_id", flat=True)) == [
        theirs.pk
    ], "hers on carla's stays; hers on bob's went with his message"
    assert get_user_model().objects.get(pk=carla.pk).username == "carla"


def test_an_admins_delete_of_someone_elses_message_no_longer_names_them(room, alice, bob):
    Membership.objects.filter(room=room, user=bob).update(role=Membership.Role.ADMIN)
    theirs = post(room, alice, "texto da alice")
    services.message_delete(room=room, message_id=theirs.pk, actor=bob)

    erase("bob")

    revision = MessageRevision.objects.get(message=theirs)
    assert (revision.actor, revision.previous_text) == (None, "texto da alice")


def test_erasing_twice_changes_nothing(story, bob, tmp_path):
    erase("bob")
    before = export(bob.pk, tmp_path)

    output = erase(bob.pk)

    after = export(bob.pk, tmp_path)
    assert {**after, "exported_at": None} == {**before, "exported_at": None}
    assert "0 messages, 0 tombstones, 0 attachments, 0 reactions, 0 notifications" in output


def test_without_yes_it_asks_and_a_no_erases_nothing(story, bob, monkeypatch):
    monkeypatch.setattr("builtins.input", lambda prompt: "no")
    with pytest.raises(CommandError, match="nothing erased"):
        call_command("erase_chat_user", "bob")

    def no_terminal(prompt):
        raise EOFError

    monkeypatch.setattr("builtins.input", no_terminal)
    with pytest.raises(CommandError):
        call_command("erase_chat_user", "bob")
    assert get_user_model().objects.get(pk=bob.pk).username == "bob"
    assert Message.objects.filter(author=bob, deleted_at__isnull=True).count() == 4


def test_an_unknown_user_is_said_so(db):
    with pytest.raises(CommandError, match="no user"):
        call_command("export_chat_user", "nobody")
    with pytest.raises(CommandError, match="no user"):
        call_command("erase_chat_user", "12345", "--yes")


@pytest.mark.django_db(transaction=True)
async def test_erasure_closes_the_users_sockets(room, alice, bob):
    socket = await joined(room_path(room), token=access_token(bob))

    await database_sync_to_async(erase)("bob")

    await assert_rejected(socket, "user_inactive", 4401)
    assert not await database_sync_to_async(Room.objects.filter(memberships__user=bob).exists)()


def test_each_changed_message_takes_one_change_number(story, bob, room):
    hers = story["alice"][0]
    services.reaction_add(room=room, message_id=hers.pk, user=bob, emoji="🎉")  # two of his
    before = RoomSequence.objects.get(room=room).change_seq

    erase("bob")

    his_in_room = 3  # tombstoned, and hers: his two reactions went
    assert RoomSequence.objects.get(room=room).change_seq == before + his_in_room + 1
    changed = Message.objects.filter(room=room, change_seq__gt=0)
    seqs = list(changed.values_list("change_seq", flat=True))
    assert len(set(seqs)) == len(seqs), "no two messages share a change number"
