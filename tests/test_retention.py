"""Retention (issue 18): messages older than their room's `retention_days` become tombstones
(`manage.py apply_chat_retention`), their files, reactions, notifications and old texts gone;
ids stay, so `after=` pages every id, and `changes/?after=` tells clients. Room admins set it
through `PATCH …/settings/`."""

from __future__ import annotations

import io
import logging
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from chat.domain import retention, services
from chat.domain.attachments import attachment_store
from chat.domain.models import (
    Attachment,
    Message,
    MessageRevision,
    Notification,
    Reaction,
    Room,
    RoomSequence,
)
from tests.factories import make_room
from tests.test_attachments import Folder, png
from tests.test_team_chat import api

pytestmark = pytest.mark.django_db


def post(room, author, text: str, *, days_old: float = 0, files=(), **options) -> Message:
    """A message as any member posts it, then made `days_old` days old."""
    ids = [attachment_store(room=room, uploader=author, upload=file).pk for file in files]
    message = services.message_create(
        room=room, author=author, text=text, attachments=ids, **options
    ).message
    if days_old:
        created_at = timezone.now() - timedelta(days=days_old)
        Message.objects.filter(pk=message.pk).update(created_at=created_at)
    return message


def picture(name: str = "foto.png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, png(64, 64), content_type="image/png")


def paged(user, room, endpoint: str, cursor: str, limit: int = 3) -> list[dict]:
    """Every item of `endpoint`, paged forwards from 0 as a recovering client does."""
    items, after = [], 0
    while True:
        response = api(user).get(
            f"/api/chat/rooms/{room.pk}/{endpoint}/", {"after": after, "limit": limit}
        )
        assert response.status_code == 200, response.content
        body = response.json()
        items += body["results"]
        if not body["has_more"]:
            return items
        after = body["results"][-1][cursor]


def history(user, room) -> list[dict]:
    return paged(user, room, "messages", "id")


def changes(user, room) -> list[dict]:
    return paged(user, room, "changes", "change_seq")


def retention_run() -> str:
    out = io.StringIO()
    call_command("apply_chat_retention", stdout=out)
    return out.getvalue()


def stored_files() -> set[str]:
    names = Attachment.objects.values_list("file", "thumbnail")
    return {name for pair in names for name in pair if name}


def snapshot(room) -> dict:
    messages = Message.objects.filter(room=room).order_by("id")
    return {
        "messages": list(messages.values()),
        "change_seq": RoomSequence.objects.filter(room=room).values_list("change_seq").first(),
        "reactions": Reaction.objects.count(),
        "attachments": Attachment.objects.count(),
    }


@pytest.fixture
def aged(room, alice, bob):
    """A room keeping 30 days: two messages of 40 and 35 days (files, a reaction, a mention,
    an edit), a reply of 31 days, and two within the 30 days (one with a file)."""
    Room.objects.filter(pk=room.pk).update(retention_days=30)
    old = post(room, alice, "segredo antigo", files=[picture()])
    services.reaction_add(room=room, message_id=old.pk, user=bob, emoji="👍")
    edited = post(room, bob, "primeira versão @alice")
    services.message_edit(room=room, message_id=edited.pk, editor=bob, text="segunda @alice")
    reply = post(room, alice, "resposta velha", reply_to=old.pk)
    kept = post(room, bob, "recente", days_old=29)
    newest = post(room, alice, "agora", files=[picture("novo.png")])
    for message, days in ((old, 40), (edited, 35), (reply, 31)):
        created_at = timezone.now() - timedelta(days=days)
        Message.objects.filter(pk=message.pk).update(created_at=created_at)
    return {"expired": [old, edited, reply], "kept": [kept, newest]}


def test_expired_messages_become_tombstones_and_after_stays_gapless(
    room, alice, bob, aged, monkeypatch
):
    monkeypatch.setattr(retention, "BATCH_SIZE", 2)  # several batches of one room
    expired, kept = aged["expired"], aged["kept"]
    newest_file = Attachment.objects.get(message=kept[1])
    files_kept = {newest_file.file.name, newest_file.thumbnail.name}
    expected_ids = list(Message.objects.filter(room=room).values_list("id", flat=True))
    seq_before = RoomSequence.objects.get(room=room).change_seq

    output = retention_run()

    items = history(bob, room)
    assert [item["id"] for item in items] == expected_ids
    assert expected_ids == list(range(expected_ids[0], expected_ids[0] + 5)), "gapless"
    by_id = {item["id"]: item for item in items}
    for message in expired:
        item = by_id[message.pk]
        assert (item["deleted"], item["message"]) == (True, ""), item
        assert (item["attachments"], item["reactions"], item["mentions"]) == ([], [], [])
    assert by_id[expired[2].pk]["reply_to"] == expired[0].pk, "threads keep their shape"
    assert [by_id[message.pk]["message"] for message in kept] == ["recente", "agora"]
    assert by_id[kept[1].pk]["attachments"][0]["name"] == "novo.png"
    assert not Reaction.objects.filter(message__in=expired).exists()
    assert not Notification.objects.filter(message__in=expired).exists()
    assert not MessageRevision.objects.filter(message__in=expired).exists(), "old texts go"
    assert stored_files() == files_kept
    assert "3 messages" in output and "1 attachments" in output
    changed = [item for item in changes(bob, room) if item["change_seq"] > seq_before]
    assert [item["id"] for item in changed] == [message.pk for message in expired]
    assert all(item["deleted"] for item in changed)


@pytest.fixture(params=["filesystem", "s3"])
def files(request, settings):
    """The stored files, seen from outside Django, on both storages (tests.test_attachments)."""
    if request.param == "s3":
        return request.getfixturevalue("s3_bucket")
    return Folder(Path(settings.MEDIA_ROOT))


def test_their_files_are_gone_from_storage(room, alice, bob, files):
    Room.objects.filter(pk=room.pk).update(retention_days=30)
    old = post(room, alice, "velha", files=[picture()], days_old=31)
    new = post(room, alice, "nova", files=[picture()])
    kept = Attachment.objects.get(message=new)
    assert len(files.keys()) == 4, "two files, two thumbnails"

    retention_run()

    assert files.keys() == sorted(files.key(name) for name in (kept.file.name, kept.thumbnail.name))
    assert not Attachment.objects.filter(message=old).exists()


def test_running_it_again_changes_nothing(room, aged):
    retention_run()
    before = snapshot(room)

    output = retention_run()

    assert snapshot(room) == before
    assert "0 messages, 0 tombstones" in output


def test_a_message_deleted_before_loses_its_audit_trail_and_reactions(room, alice, bob):
    Room.objects.filter(pk=room.pk).update(retention_days=7)
    message = post(room, alice, "texto apagado")
    services.reaction_add(room=room, message_id=message.pk, user=bob, emoji="🎉")
    services.message_delete(room=room, message_id=message.pk, actor=alice)
    deleted_at = Message.objects.get(pk=message.pk).deleted_at
    Message.objects.filter(pk=message.pk).update(created_at=timezone.now() - timedelta(days=8))
    assert MessageRevision.objects.get(message=message).previous_text == "texto apagado"

    output = retention_run()

    assert not MessageRevision.objects.filter(message=message).exists()
    assert not Reaction.objects.filter(message=message).exists()
    assert Message.objects.get(pk=message.pk).deleted_at == deleted_at, "when it was deleted"
    assert "0 messages, 1 tombstones" in output
    assert "0 messages, 0 tombstones, 0 attachments, 0 reactions" in retention_run()


def test_only_rooms_with_retention_and_only_their_old_messages(room, alice, bob):
    forever = make_room(admins=[alice], members=[bob], name="Para sempre")
    short = make_room(admins=[alice], name="Curta")
    Room.objects.filter(pk=short.pk).update(retention_days=1)
    Room.objects.filter(pk=room.pk).update(retention_days=365)
    ancient = [post(where, alice, "antiga", days_old=400) for where in (room, forever, short)]
    recent = post(short, alice, "de ontem", days_old=0.5)

    retention_run()

    deleted = dict(Message.objects.values_list("pk", "deleted_at"))
    assert deleted[ancient[0].pk] is not None and deleted[ancient[2].pk] is not None
    assert deleted[ancient[1].pk] is None, "a room without retention keeps everything"
    assert deleted[recent.pk] is None


def test_search_no_longer_finds_expired_messages(room, alice, bob):
    Room.objects.filter(pk=room.pk).update(retention_days=30)
    old = post(room, alice, "orçamento sigiloso", days_old=31)
    new = post(room, alice, "orçamento aprovado")

    retention_run()

    found = api(bob).get("/api/chat/search/", {"q": "orçamento"}).json()["results"]
    assert [hit["message"]["id"] for hit in found] == [new.pk]
    assert indexed("sigiloso") == [], "the index itself forgot the text"
    assert indexed("aprovado") == [new.pk]
    assert old.pk not in indexed("orçamento")


def indexed(word: str) -> list[int]:
    """The ids the database's own search index finds `word` in (not the search's filters)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT id FROM chat_message WHERE search_vector @@ "
                "plainto_tsquery('chat_search', %s) ORDER BY id",
                [word],
            )
        else:
            cursor.execute(
                "SELECT rowid FROM chat_message_fts WHERE chat_message_fts MATCH %s ORDER BY rowid",
                [f'"{word}"'],
            )
        return [row[0] for row in cursor.fetchall()]


def test_the_log_says_what_went_room_by_room_never_the_texts(room, alice, caplog):
    Room.objects.filter(pk=room.pk).update(retention_days=30)
    post(room, alice, "conteúdo confidencial", days_old=31)

    with caplog.at_level(logging.INFO, logger="chat.domain.retention"):
        retention_run()

    [record] = [r for r in caplog.records if r.name == "chat.domain.retention"]
    assert str(room.pk) in record.getMessage() and "1 messages" in record.getMessage()
    assert "confidencial" not in caplog.text


# --- The setting.


def settings_patch(user, room, body):
    return api(user).patch(f"/api/chat/rooms/{room.pk}/settings/", body, format="json")


def test_room_admins_set_retention_and_rooms_show_it(room, alice, bob):
    assert api(bob).get(f"/api/chat/rooms/{room.pk}/").json()["retention_days"] is None

    changed = settings_patch(alice, room, {"retention_days": 30})

    assert changed.status_code == 200, changed.content
    assert changed.json()["retention_days"] == 30
    assert changed.json()["seen_by"] is True, "the settings not given stay"
    [listed] = api(bob).get("/api/chat/rooms/").json()
    assert listed["retention_days"] == 30
    forever = settings_patch(alice, room, {"retention_days": None, "seen_by": False})
    assert (forever.json()["retention_days"], forever.json()["seen_by"]) == (None, False)


def test_only_room_admins_set_it(room, bob):
    refused = settings_patch(bob, room, {"retention_days": 1})

    assert (refused.status_code, refused.json()["code"]) == (403, "not_room_admin")
    assert Room.objects.get(pk=room.pk).retention_days is None


@pytest.mark.parametrize("days", [0, -1, 36501, 1.5, "abc", True, [30]])
def test_retention_is_whole_days_from_one_to_a_hundred_years(room, alice, days):
    refused = settings_patch(alice, room, {"retention_days": days})

    assert refused.status_code == 400, refused.content
    assert refused.json()["code"] == "invalid_request"
    assert "retention_days" in refused.json()["fields"]


@pytest.mark.parametrize("days", [1, 36500])
def test_the_bounds_are_allowed(room, alice, days):
    assert settings_patch(alice, room, {"retention_days": days}).json()["retention_days"] == days


def test_an_empty_patch_changes_nothing(room, alice, bob):
    assert settings_patch(alice, room, {}).status_code == 200
    assert settings_patch(bob, room, {}).status_code == 403, "still room admins only"
    assert Room.objects.filter(pk=room.pk, seen_by=True, retention_days=None).exists()


def test_the_service_refuses_what_the_api_would(room):
    for days in (0, 36501, "30", True):
        with pytest.raises(services.refusals.InvalidRequest):
            services.room_settings_set(room=room, changes={"retention_days": days})
    with pytest.raises(services.refusals.InvalidRequest):
        services.room_settings_set(room=room, changes={"name": "x"})


def test_the_admin_shows_it(room, admin_client):
    page = admin_client.get(f"/admin/chat/room/{room.pk}/change/")

    assert page.status_code == 200
    assert b'name="retention_days"' in page.content
