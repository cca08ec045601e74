"""Attachments: files uploaded to a room, carried by a message, served to its members only.

A file's type is what its bytes say (the `filetype` package's signatures; text that is valid
UTF-8 is text/plain; anything else application/octet-stream), never the client's word, and
executables are refused whatever their name. Images get a thumbnail (Pillow). Files are
stored through Django's storage API under random names; the original name, made safe, is
kept for the download's Content-Disposition.
"""

from __future__ import annotations

import io
import logging
import os
import unicodedata
from datetime import timedelta

import filetype
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone
from PIL import Image, UnidentifiedImageError

from chat.domain import refusals
from chat.domain.access import is_member
from chat.domain.models import Attachment, Message, Room

logger = logging.getLogger(__name__)

IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
# Programs, whatever they are called: ELF, Windows PE, Mach-O (and their fat binaries).
_EXECUTABLE_TYPES = frozenset({"application/x-executable", "application/x-msdownload"})
_EXECUTABLE_MAGIC = (
    b"\x7fELF",
    b"MZ",
    b"\xfe\xed\xfa\xce",
    b"\xfe\xed\xfa\xcf",
    b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",
)
THUMBNAIL_SIZE = (320, 320)
SNIFF_BYTES = 8192


def attachment_store(*, room: Room, uploader, upload) -> Attachment:
    """Store an uploaded file (a Django UploadedFile) for `uploader`'s next message here."""
    if not is_member(room_id=room.pk, user=uploader):
        raise refusals.NotAMember()
    limit = settings.CHAT_MAX_UPLOAD_BYTES
    if upload.size > limit:
        raise refusals.FileTooLarge(f"a file may have at most {limit} bytes")
    head = upload.read(SNIFF_BYTES)
    upload.seek(0)
    content_type = sniffed_type(head)
    attachment = Attachment(
        room=room,
        uploader=uploader,
        name=safe_name(upload.name),
        content_type=content_type,
        size=upload.size,
    )
    # Object stores (S3) keep a content type with each object, taken from the file given: the
    # sniffed one, never the client's claim (a text/html there would be served as a page).
    upload.content_type = content_type
    attachment.file.save("upload", upload, save=False)
    if content_type in IMAGE_TYPES:
        thumbnail = _thumbnail(upload)
        if thumbnail is not None:
            attachment.thumbnail.save("thumbnail", _jpeg(thumbnail), save=False)
    attachment.save()
    return attachment


def sniffed_type(head: bytes) -> str:
    """The content type the bytes show; refuses programs."""
    if head.startswith(_EXECUTABLE_MAGIC):
        raise refusals.FileTypeNotAllowed()
    kind = filetype.guess(head)
    if kind is not None:
        if kind.mime in _EXECUTABLE_TYPES:
            raise refusals.FileTypeNotAllowed()
        return kind.mime
    if b"\x00" not in head and _utf8_prefix(head):
        return "text/plain"
    return "application/octet-stream"


def _utf8_prefix(head: bytes) -> bool:
    # The sniffed window may end inside a character: a cut of up to 3 bytes is still text.
    for cut in range(4):
        try:
            head[: len(head) - cut].decode("utf-8")
            return True
        except UnicodeDecodeError:
            continue
    return False


def safe_name(name: str | None) -> str:
    """The file's own name without any path, control or quote characters, at most 120
    characters, its extension kept; "arquivo" when nothing is left."""
    base = os.path.basename((name or "").replace("\\", "/"))
    kept = "".join(
        ch for ch in unicodedata.normalize("NFC", base) if ch.isprintable() and ch not in '"<>;'
    ).strip(" .")
    if not kept:
        return "arquivo"
    stem, extension = os.path.splitext(kept)
    return stem[: 120 - len(extension[:16])] + extension[:16]


def _thumbnail(upload) -> bytes | None:
    try:
        with Image.open(upload) as image:
            image.thumbnail(THUMBNAIL_SIZE)
            out = io.BytesIO()
            image.convert("RGB").save(out, format="JPEG", quality=80)
            return out.getvalue()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError):
        logger.info("no thumbnail for an upload that does not decode as an image")
        return None
    finally:
        upload.seek(0)


def _jpeg(data: bytes) -> ContentFile:
    thumbnail = ContentFile(data)
    thumbnail.content_type = "image/jpeg"
    return thumbnail


def attachments_claim(*, room: Room, author, ids: list[int], message: Message) -> list[dict]:
    """Give `message` the uploads `ids` (the author's, of this room, carried by no message
    yet); returns what the message stores of them. Inside the message's transaction."""
    if not ids:
        return []
    found = list(
        Attachment.objects.select_for_update()
        .filter(pk__in=ids, room=room, uploader=author, message__isnull=True)
        .order_by("id")
    )
    if len(found) != len(set(ids)):
        raise refusals.AttachmentNotUsable()
    Attachment.objects.filter(pk__in=[a.pk for a in found]).update(message=message)
    return [attachment_payload(attachment) for attachment in found]


def attachment_payload(attachment: Attachment) -> dict:
    url = f"/api/chat/attachments/{attachment.pk}/"
    return {
        "id": attachment.pk,
        "name": attachment.name,
        "content_type": attachment.content_type,
        "size": attachment.size,
        "url": url,
        "thumbnail_url": f"{url}thumbnail/" if attachment.thumbnail else None,
    }


def attachment_for_download(*, attachment_id: int, user) -> Attachment:
    """The attachment if `user` may download it: a member of its room, and either its message
    is not deleted or, not yet sent, `user` uploaded it. Not found otherwise, whatever the
    reason (as any room outside the user's)."""
    attachment = Attachment.objects.select_related("message").filter(pk=attachment_id).first()
    if attachment is None or not is_member(room_id=attachment.room_id, user=user):
        raise refusals.AttachmentNotFound()
    message = attachment.message
    if message is None and attachment.uploader_id != user.pk:
        raise refusals.AttachmentNotFound()
    if message is not None and message.deleted_at is not None:
        raise refusals.AttachmentNotFound()
    return attachment


def attachment_file_open(attachment: Attachment, *, thumbnail: bool = False):
    """The attachment's stored file (or its thumbnail), open for reading. A file the storage
    has lost (removed by hand, a bucket emptied) is not found, and logged, not a server error.
    Its size is asked first: S3 fetches an object only on the first read, when the response
    has begun, too late to say 404."""
    stored = attachment.thumbnail if thumbnail else attachment.file
    if not stored:
        raise refusals.AttachmentNotFound()
    try:
        stored.size  # noqa: B018 - the storage's own check that the file is there
        return stored.open("rb")
    except Exception as error:
        if not _lost(error):
            raise
        logger.warning("attachment %s: its stored file %s is gone", attachment.pk, stored.name)
        raise refusals.AttachmentNotFound() from None


def _lost(error: Exception) -> bool:
    """FileSystemStorage: FileNotFoundError; S3 (botocore's ClientError): a 404 answer."""
    if isinstance(error, FileNotFoundError):
        return True
    answer = getattr(error, "response", None)
    return isinstance(answer, dict) and answer.get("Error", {}).get("Code") in ("404", "NoSuchKey")


def uploads_purge(*, now=None) -> int:
    """Delete the files no message carries after CHAT_UPLOAD_ORPHAN_HOURS, and those of
    deleted messages; returns how many. What `manage.py purge_chat_uploads` runs."""
    now = now or timezone.now()
    expired = now - timedelta(hours=settings.CHAT_UPLOAD_ORPHAN_HOURS)
    doomed = list(
        Attachment.objects.filter(message__isnull=True, created_at__lt=expired)
        | Attachment.objects.filter(message__deleted_at__isnull=False)
    )
    for attachment in doomed:
        with transaction.atomic():
            for stored in (attachment.file, attachment.thumbnail):
                if stored:
                    stored.delete(save=False)
            attachment.delete()
    return len(doomed)
