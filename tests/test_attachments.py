"""Attachments (docs/protocol.md, "Attachments"): upload, sniffed type, size limit, thumbnails,
carried by a message, served to members only, purged when orphaned."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.utils import timezone
from PIL import Image

from chat.domain import services
from chat.domain.attachments import safe_name
from chat.domain.models import Attachment, Message
from tests.factories import access_token, make_room
from tests.test_team_chat import api
from tests.ws import joined, room_path

pytestmark = pytest.mark.django_db(transaction=True)

ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 200
PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n" + bytes(range(256)) + b"\n%%EOF\n"


@dataclass
class Folder:
    """FileSystemStorage's files seen from outside Django, as tests.s3_server.Bucket sees its
    objects: the same questions asked of both storages."""

    root: Path

    def key(self, name: str) -> str:
        return name

    def keys(self) -> list[str]:
        found = self.root.rglob("*") if self.root.exists() else ()
        return sorted(path.relative_to(self.root).as_posix() for path in found if path.is_file())

    def read(self, key: str) -> bytes:
        return (self.root / key).read_bytes()


@pytest.fixture(params=["filesystem", "s3"])
def storage(request, settings):
    """Tests taking it run on both storages: files under MEDIA_ROOT, and objects in a bucket of
    the S3-compatible test server (tests/s3_server.py)."""
    if request.param == "s3":
        return request.getfixturevalue("s3_bucket")
    return Folder(Path(settings.MEDIA_ROOT))


def png(width: int = 800, height: int = 600) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def upload(user, room, content: bytes, name: str = "file.bin", claimed: str = "text/plain"):
    return api(user).post(
        f"/api/chat/rooms/{room.pk}/attachments/",
        {"file": SimpleUploadedFile(name, content, content_type=claimed)},
        format="multipart",
    )


def test_an_upload_is_stored_under_its_sniffed_type_with_a_safe_name(room, bob, storage):
    picture = png()
    response = upload(bob, room, picture, name="../../etc/foto<x>.png.txt", claimed="text/plain")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["content_type"] == "image/png", "the bytes say, not the client"
    assert body["name"] == "fotox.png.txt"
    assert body["url"] == f"/api/chat/attachments/{body['id']}/"
    assert body["thumbnail_url"] == f"/api/chat/attachments/{body['id']}/thumbnail/"
    stored = Attachment.objects.get(pk=body["id"])
    assert "etc" not in stored.file.name and "foto" not in stored.file.name
    file, thumbnail = storage.key(stored.file.name), storage.key(stored.thumbnail.name)
    assert storage.keys() == sorted([file, thumbnail])
    assert file.startswith(storage.key(f"chat/{room.pk.hex}/")), "under the prefix, by room"
    assert storage.read(file) == picture


def test_a_pdf_is_stored_as_uploaded_without_a_thumbnail(room, bob, storage):
    response = upload(bob, room, PDF, name="C:\\docs\\Relatório <final>.pdf", claimed="image/png")

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["name"], body["content_type"]) == ("Relatório final.pdf", "application/pdf")
    assert body["thumbnail_url"] is None
    stored = Attachment.objects.get(pk=body["id"])
    assert storage.keys() == [storage.key(stored.file.name)]
    assert "Relat" not in stored.file.name
    assert storage.read(storage.key(stored.file.name)) == PDF


def test_objects_are_private_and_typed_by_their_bytes(room, bob, s3_bucket):
    """No ACL grants anyone but the bucket's owner (a public-read upload would list AllUsers);
    the object's type is the sniffed one, so even served from the bucket it is no page."""
    document = upload(bob, room, PDF, name="a.html", claimed="text/html").json()
    picture = upload(bob, room, png(), name="b.html", claimed="text/html").json()
    pdf = Attachment.objects.get(pk=document["id"])
    image = Attachment.objects.get(pk=picture["id"])
    client = s3_bucket.server.client()

    for name in (pdf.file.name, image.file.name, image.thumbnail.name):
        acl = client.get_object_acl(Bucket=s3_bucket.name, Key=s3_bucket.key(name))
        owner = acl["Owner"]["ID"]
        assert [(g["Grantee"].get("ID"), g["Permission"]) for g in acl["Grants"]] == [
            (owner, "FULL_CONTROL")
        ]
    types = [
        s3_bucket.object(s3_bucket.key(name))["ContentType"]
        for name in (pdf.file.name, image.file.name, image.thumbnail.name)
    ]
    assert types == ["application/pdf", "image/png", "image/jpeg"]


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ('..\\..\\windows\\"a;b".exe', "ab.exe"),
        ("/etc/passwd", "passwd"),
        ("\x00\x07relatório\u202e.pdf", "relatório.pdf"),
        ("...", "arquivo"),
        ("", "arquivo"),
        ("x" * 300 + ".tar.gz", "x" * 117 + ".gz"),
    ],
)
def test_names_lose_paths_quotes_and_control_characters(name, safe):
    assert safe_name(name) == safe


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"ol\xc3\xa1, planilha;1;2\n", "text/plain"),
        (b"%PDF-1.7\n" + b"0" * 100, "application/pdf"),
        (bytes(range(256)) * 4, "application/octet-stream"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "text/plain"),
    ],
)
def test_types_come_from_the_bytes(room, bob, content, expected):
    response = upload(bob, room, content, name="x.png", claimed="image/png")
    assert response.status_code == 201 and response.json()["content_type"] == expected


@pytest.mark.parametrize(
    ("content", "name"),
    [(ELF, "relatorio.pdf"), (b"MZ\x90\x00" + b"\x00" * 200, "foto.jpg")],
)
def test_a_renamed_program_is_refused_with_a_clear_code(room, bob, content, name):
    response = upload(bob, room, content, name=name, claimed="application/pdf")
    assert (response.status_code, response.json()["code"]) == (415, "file_type_not_allowed")
    assert not Attachment.objects.exists()


def test_a_file_over_the_limit_by_one_byte_is_refused(room, bob, settings):
    limit = settings.CHAT_MAX_UPLOAD_BYTES
    assert limit == 10 * 1024 * 1024, "the default the issue names"
    response = upload(bob, room, b"a" * (limit + 1))
    assert (response.status_code, response.json()["code"]) == (413, "file_too_large")
    assert upload(bob, room, b"a" * limit).status_code == 201


def test_non_members_can_neither_upload_nor_download(room, alice, bob, outsider):
    refused = upload(outsider, room, b"oi")
    mine = upload(bob, room, b"oi").json()
    services.message_create(room=room, author=bob, text="veja", attachments=[mine["id"]])

    download = api(outsider).get(mine["url"])

    assert (refused.status_code, refused.json()["code"]) == (404, "room_not_found")
    assert (download.status_code, download.json()["code"]) == (404, "attachment_not_found")
    assert api(alice).get(mine["url"]).status_code == 200


def test_a_message_carries_its_uploads_and_members_download_them(room, alice, bob, storage):
    picture = png()
    image, text = upload(bob, room, picture).json(), upload(bob, room, b"notas").json()

    posted = api(bob).post(
        f"/api/chat/rooms/{room.pk}/messages/",
        {"message": "segue", "attachments": [image["id"], text["id"]]},
        format="json",
    )

    assert posted.status_code == 201, posted.content
    assert [a["id"] for a in posted.json()["attachments"]] == [image["id"], text["id"]]
    history = api(alice).get(f"/api/chat/rooms/{room.pk}/messages/").json()["results"]
    assert history[-1]["attachments"] == posted.json()["attachments"]
    shown = api(alice).get(image["url"])
    saved = api(alice).get(text["url"])
    assert shown["Content-Type"] == "image/png" and shown["X-Content-Type-Options"] == "nosniff"
    assert "attachment" not in shown.get("Content-Disposition", "")
    assert b"".join(shown.streaming_content) == picture
    assert saved["Content-Disposition"].startswith("attachment")
    assert b"".join(saved.streaming_content) == b"notas"
    thumb = api(alice).get(image["thumbnail_url"])
    thumbnail = Image.open(io.BytesIO(b"".join(thumb.streaming_content)))
    assert thumb["Content-Type"] == "image/jpeg" and max(thumbnail.size) <= 320


def test_a_file_the_storage_lost_is_not_found_not_a_server_error(room, bob, storage, caplog):
    image = upload(bob, room, png()).json()
    stored = Attachment.objects.get(pk=image["id"])
    stored.file.storage.delete(stored.file.name)

    assert api(bob).get(image["url"]).status_code == 404
    assert api(bob).get(image["thumbnail_url"]).status_code == 200, "the thumbnail is still there"
    assert f"attachment {image['id']}: its stored file" in caplog.text


async def test_a_socket_message_with_attachments_reaches_every_member(room, alice, bob):
    from asgiref.sync import sync_to_async

    uploaded = (await sync_to_async(upload)(bob, room, b"ata")).json()
    watcher = await joined(room_path(room), token=access_token(alice))
    sender = await joined(room_path(room), token=access_token(bob))

    await sender.send_json_to(
        {"type": "chat.message", "message": "ata", "attachments": [uploaded["id"]]}
    )

    frame = await watcher.receive_json_from()
    assert frame["attachments"] == [uploaded]
    for socket in (watcher, sender):
        await socket.disconnect()


def test_attachments_must_be_the_authors_unsent_uploads_of_the_room(room, alice, bob):
    theirs = upload(alice, room, b"da alice").json()
    elsewhere = make_room(members=[bob])
    foreign = upload(bob, elsewhere, b"outra sala").json()
    mine = upload(bob, room, b"minha").json()
    services.message_create(room=room, author=bob, text="uma vez", attachments=[mine["id"]])

    for ids in ([theirs["id"]], [foreign["id"]], [mine["id"]], [999999]):
        response = api(bob).post(
            f"/api/chat/rooms/{room.pk}/messages/",
            {"message": "x", "attachments": ids},
            format="json",
        )
        assert (response.status_code, response.json()["code"]) == (404, "invalid_frame"), ids
    assert not Message.objects.filter(text="x").exists()


def test_an_unsent_upload_is_its_uploaders_only(room, alice, bob):
    mine = upload(bob, room, b"rascunho").json()
    assert api(bob).get(mine["url"]).status_code == 200
    assert api(alice).get(mine["url"]).status_code == 404


def test_a_deleted_messages_files_are_no_longer_served_and_are_purged(room, alice, bob, storage):
    kept, gone = upload(bob, room, b"a").json(), upload(bob, room, b"b").json()
    orphan = upload(bob, room, png()).json()  # with a thumbnail, purged with it
    services.message_create(room=room, author=bob, text="fica", attachments=[kept["id"]])
    doomed = services.message_create(
        room=room, author=bob, text="sai", attachments=[gone["id"]]
    ).message
    services.message_delete(room=room, message_id=doomed.pk, actor=bob)
    Attachment.objects.filter(pk=orphan["id"]).update(
        created_at=timezone.now() - timedelta(hours=25)
    )

    assert api(alice).get(gone["url"]).status_code == 404
    assert Message.objects.get(pk=doomed.pk).attachments == []
    assert len(storage.keys()) == 4, "three files and a thumbnail"
    call_command("purge_chat_uploads", stdout=io.StringIO())

    assert list(Attachment.objects.values_list("pk", flat=True)) == [kept["id"]]
    assert storage.keys() == [storage.key(Attachment.objects.get().file.name)]
    assert b"".join(api(alice).get(kept["url"]).streaming_content) == b"a"


def downloaded(user, url: str) -> tuple[bytes, dict]:
    response = api(user).get(url)
    assert response.status_code == 200, response.content
    return b"".join(response.streaming_content), dict(response.headers)


def test_downloads_are_the_same_bytes_and_headers_from_either_storage(
    settings, room, alice, bob, s3_server
):
    from tests.s3_server import Bucket

    def served() -> list[tuple[bytes, dict]]:
        picture = upload(bob, room, png(), name="foto.png").json()
        document = upload(bob, room, PDF, name="relatório.pdf").json()
        services.message_create(
            room=room, author=bob, text="x", attachments=[picture["id"], document["id"]]
        )
        urls = (picture["url"], picture["thumbnail_url"], document["url"])
        return [downloaded(alice, url) for url in urls]

    on_disk = served()
    settings.STORAGES = Bucket.create(s3_server).storages()
    on_s3 = served()

    assert on_s3 == on_disk
    assert on_disk[2][1]["Content-Disposition"] == (
        "attachment; filename*=utf-8''relat%C3%B3rio.pdf"
    )


async def test_socket_attachments_must_be_a_short_list_of_ids(room, bob):
    socket = await joined(room_path(room), token=access_token(bob))
    for bad in ("1", [0], [True], [2**63], list(range(1, 12)), {"id": 1}):
        await socket.send_json_to({"type": "chat.message", "message": "x", "attachments": bad})
        error = await socket.receive_json_from()
        assert (error["type"], error["code"]) == ("error", "invalid_frame"), bad
    await socket.disconnect()
