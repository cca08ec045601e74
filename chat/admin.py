from django.contrib import admin

from chat.models import Membership, Message, MessageRevision, Room


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ["name", "type", "id", "created_by", "created_at"]
    list_filter = ["type"]
    search_fields = ["name", "id"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["room", "user", "role", "joined_at"]
    list_filter = ["role"]
    raw_id_fields = ["room", "user"]


class MessageRevisionInline(admin.TabularInline):
    """The audit trail is read-only: admins read it, nobody rewrites it."""

    model = MessageRevision
    extra = 0
    can_delete = False
    fields = readonly_fields = ["action", "actor", "previous_text", "created_at"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(MessageRevision)
class MessageRevisionAdmin(admin.ModelAdmin):
    list_display = ["message", "action", "actor", "created_at"]
    list_filter = ["action"]
    readonly_fields = ["message", "actor", "action", "previous_text", "created_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # an audit trail nobody can rewrite or erase from the admin


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    """Messages are read here, not rewritten: an edit or delete that skipped chat.services
    would leave no revision (and a hard delete would take the revisions with it)."""

    inlines = [MessageRevisionInline]
    list_display = ["id", "room", "author", "text", "created_at", "edited_at", "deleted_at"]
    list_filter = ["room"]
    search_fields = ["text"]
    fields = readonly_fields = [
        "room", "author", "text", "client_id", "created_at", "edited_at", "deleted_at"
    ]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
