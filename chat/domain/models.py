import uuid

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from chat.domain.fields import NulSafeTextField

RETENTION_DAYS_MAX = 36500  # a hundred years: any longer is "forever", which is null


class Room(models.Model):
    class Type(models.TextChoices):
        COMMUNITY = "community"
        GROUP = "group"
        DIRECT = "direct"
        RECORD = "record"  # bound to a CRM record: access follows the record

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    type = models.CharField(max_length=20, choices=Type.choices, default=Type.GROUP)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="chat_rooms"
    )
    # "<smaller user id>:<larger user id>" for direct rooms: one room per pair, by constraint.
    direct_key = models.CharField(max_length=50, null=True, blank=True, unique=True)
    # Members see each other's read markers ("seen by"); off: each member's stay their own.
    seen_by = models.BooleanField(default=True)
    # A room about a record of the CRM (a deal, a ticket): its members are whoever the record's
    # access policy lets in (chat.domain.records), kept in step by room_access_changed.
    record_type = models.ForeignKey(
        "contenttypes.ContentType",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    record_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001 - NULL: no record, outside the unique constraint
    record = GenericForeignKey("record_type", "record_id")
    record_label = models.CharField(max_length=200, blank=True, default="")  # str(record)
    # Closed to new messages (a won deal): history stays readable.
    read_only = models.BooleanField(default=False)
    # Messages older than this many days become tombstones (chat.domain.retention, run daily
    # by `manage.py apply_chat_retention`); null: kept forever.
    retention_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(RETENTION_DAYS_MAX)],
        help_text="messages older than this many days are deleted (tombstones); empty: never",
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["record_type", "record_id"],
                condition=models.Q(record_type__isnull=False),
                name="room_unique_record",
            )
        ]

    def __str__(self) -> str:
        return self.name


class RoomSequence(models.Model):
    """A room's change counter: every change to a stored message (edit, delete, reactions,
    replies) takes the next value, under the room's order, so `changes/?after=` recovers them
    as `messages/?after=` recovers new messages. A row of its own, not a column of Room: other
    code may hold the room's row in a long transaction (the admin saves it), and a message's
    change must not wait for that. No row: no change yet (0)."""

    room = models.OneToOneField(
        Room, on_delete=models.CASCADE, primary_key=True, related_name="sequence"
    )
    change_seq = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.room_id}: change {self.change_seq}"


class Membership(models.Model):
    class Role(models.TextChoices):
        MEMBER = "member"
        ADMIN = "admin"

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    joined_at = models.DateTimeField(auto_now_add=True)
    # Read marker: the newest message id this member has read in the room (0: none).
    last_read_message_id = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["room", "user"], name="membership_unique_room_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.room} ({self.role})"


class Message(models.Model):
    class Kind(models.TextChoices):
        USER = "user"  # written by a member
        SYSTEM = "system"  # an event of the room's record (chat.domain.records), with `data`

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_messages"
    )
    text = NulSafeTextField()
    # A reply belongs to a thread: its root, a message of the same room that is no reply.
    reply_to = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        # Messages are tombstoned, not deleted: only deleting their author (or room) removes
        # rows, and that must not take other people's replies along.
        on_delete=models.SET_NULL,
        related_name="replies",
        db_index=False,  # message_thread_idx (reply_to, id) serves it
    )
    reply_count = models.IntegerField(default=0, editable=False)  # on a root: its replies
    last_reply_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The room's change_seq at the message's last change (0: never changed).
    change_seq = models.BigIntegerField(default=0, editable=False)
    # Members mentioned (@username, @all, @here), resolved when the text was stored.
    mentions = models.JSONField(default=list, blank=True, editable=False)
    # The files it carries, as stored with it (chat.domain.attachments.attachment_payload):
    # fixed once posted; a tombstone carries none.
    attachments = models.JSONField(default=list, blank=True, editable=False)
    client_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001 - NULL: no client_id, outside the unique constraint
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    edited_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)  # a tombstone: text is emptied
    # db_default too: bulk INSERTs outside the ORM (bench/) need not name it.
    kind = models.CharField(
        max_length=10, choices=Kind.choices, default=Kind.USER, db_default=Kind.USER
    )
    data = models.JSONField(null=True, blank=True)  # a system message's facts, for clients

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["room", "id"], name="message_room_id_idx"),
            models.Index(fields=["room", "change_seq"], name="message_room_change_idx"),
            models.Index(fields=["reply_to", "id"], name="message_thread_idx"),
        ]
        constraints = [
            # A client retry (same client_id, room and author) is stored once.
            models.UniqueConstraint(
                fields=["room", "author", "client_id"],
                condition=models.Q(client_id__isnull=False),
                name="message_unique_client_id",
            )
        ]

    def __str__(self) -> str:
        return f"#{self.id} {self.author} in {self.room}"

    @property
    def author_username(self) -> str:
        return self.author.username

    @property
    def author_is_bot(self) -> bool:
        return self.author.is_bot


def _attachment_path(attachment, filename: str) -> str:
    # Never the uploader's name on disk: a random one, by room (the name is kept in `name`).
    return f"chat/{attachment.room_id.hex}/{uuid.uuid4().hex}"


class Attachment(models.Model):
    """A file uploaded to a room, then carried by one message of its uploader's."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="attachments")
    uploader = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_uploads"
    )
    message = models.ForeignKey(
        "Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="files"
    )
    file = models.FileField(upload_to=_attachment_path, max_length=200)
    thumbnail = models.FileField(upload_to=_attachment_path, max_length=200, blank=True)
    name = models.CharField(max_length=255)  # the original name, made safe
    content_type = models.CharField(max_length=100)  # sniffed from the bytes
    size = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.content_type}) in {self.room}"


class Reaction(models.Model):
    """One user's emoji on one message: at most once per (message, user, emoji)."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="reactions")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_reactions"
    )
    emoji = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["message", "user", "emoji"], name="reaction_unique_message_user_emoji"
            )
        ]

    def __str__(self) -> str:
        return f"{self.emoji} by {self.user} on #{self.message_id}"


class Notification(models.Model):
    """Something for one user to see: a mention of them, a reply to their message, a direct
    message. One per user and message (the first reason wins: mention, reply, direct)."""

    class Kind(models.TextChoices):
        MENTION = "mention"
        REPLY = "reply"
        DIRECT = "direct"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="chat_notifications",
        db_index=False,  # notification_feed_idx (user, id) serves it
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="+")
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="notifications")
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)  # in a digest: never again

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "message"], name="notification_unique")
        ]
        indexes = [
            models.Index(fields=["user", "id"], name="notification_feed_idx"),
            models.Index(fields=["user", "room", "kind"], name="notification_room_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} for {self.user} on #{self.message_id}"


class NotificationSettings(models.Model):
    """A user's choices about notifications; a user without a row has the defaults."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="chat_notification_settings",
    )
    email_digests = models.BooleanField(default=True)

    def __str__(self) -> str:
        return f"notification settings of {self.user}"


class MessageRevision(models.Model):
    """Audit trail: every edit and delete, who did it, when, and the text before."""

    class Action(models.TextChoices):
        EDIT = "edit"
        DELETE = "delete"

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="revisions")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=10, choices=Action.choices)
    previous_text = NulSafeTextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.action} of #{self.message_id} by {self.actor}"
