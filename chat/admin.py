from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied

from chat.domain import services
from chat.domain.models import Membership, Message, MessageRevision, Room
from chat.domain.refusals import Refusal
from chat.domain.services import DIRECT_MEMBERS_ARE_FIXED, DIRECT_ROOMS_ONLY_FROM_DIRECT

# Memberships and names change here through chat.domain.services, as everywhere: open
# sockets hear of it (a removed member's sockets close). Direct rooms keep their two
# members here too. The last-admin rule does not bind this site (the services' `by=None`,
# the system): operators may remove or demote a room's last admin, and this is where a room
# without an admin gets one.


def _membership_remove(membership: Membership) -> None:
    try:
        services.membership_remove(room=membership.room, user=membership.user)
    except Refusal as refusal:
        raise PermissionDenied(refusal.detail) from None


def _membership_add(membership: Membership) -> None:
    try:
        added, _ = services.membership_add(
            room=membership.room, user=membership.user, role=membership.role
        )
    except Refusal as refusal:
        raise PermissionDenied(refusal.detail) from None
    membership.pk = added.pk


def _is_direct(room) -> bool:
    return room is not None and room.type == Room.Type.DIRECT


class RoomForm(forms.ModelForm):
    def clean_type(self):
        new = self.cleaned_data["type"]
        old = None if self.instance._state.adding else self.instance.type
        if new != old and Room.Type.DIRECT in (new, old):
            raise forms.ValidationError(DIRECT_ROOMS_ONLY_FROM_DIRECT)
        return new


class MembershipForm(forms.ModelForm):
    def clean_room(self):
        room = self.cleaned_data["room"]
        if _is_direct(room) and (self.instance._state.adding or self.instance.room_id != room.pk):
            raise forms.ValidationError(DIRECT_MEMBERS_ARE_FIXED)
        return room


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]

    def has_add_permission(self, request, obj=None):
        return not _is_direct(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return not _is_direct(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return not _is_direct(obj) and super().has_delete_permission(request, obj)


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    form = RoomForm

    def save_model(self, request, obj, form, change):
        if not change:
            return super().save_model(request, obj, form, change)
        # Only what the form changed: a full save would write back counters (change_seq) that
        # changes of the room move meanwhile, under the room's order.
        fields = [name for name in form.changed_data if name != "name"]
        if fields:
            obj.save(update_fields=fields)
        if "name" in form.changed_data:
            services.room_rename(room=obj, name=obj.name)  # its sockets get room.updated

    def save_formset(self, request, form, formset, change):
        if formset.model is not Membership:
            return super().save_formset(request, form, formset, change)
        memberships = formset.save(commit=False)
        for removed in formset.deleted_objects:
            _membership_remove(removed)
        for membership in memberships:
            if membership.pk is None:
                _membership_add(membership)
            else:
                membership.save()
        formset.save_m2m()
        return None

    list_display = ["name", "type", "id", "created_by", "created_at", "retention_days"]
    list_filter = ["type"]
    search_fields = ["name", "id"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    form = MembershipForm
    list_display = ["room", "user", "role", "joined_at"]
    list_filter = ["role"]
    raw_id_fields = ["room", "user"]

    def has_change_permission(self, request, obj=None):
        return not _is_direct(obj and obj.room) and super().has_change_permission(request, obj)

    def get_readonly_fields(self, request, obj=None):
        # A membership moves to another room or user only as a removal and an addition, which
        # the room's sockets hear of: here only its role changes.
        return ["room", "user"] if obj is not None else []

    # Refused here, not by has_delete_permission: deleting a user or a room deletes their
    # memberships too, and Django would refuse that whole deletion on a direct room's member.
    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
        else:
            _membership_add(obj)

    def delete_model(self, request, obj):
        _membership_remove(obj)

    def delete_queryset(self, request, queryset):
        if queryset.filter(room__type=Room.Type.DIRECT).exists():
            raise PermissionDenied(DIRECT_MEMBERS_ARE_FIXED)
        for membership in queryset.select_related("room", "user"):
            _membership_remove(membership)


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
    """Messages are read here, not rewritten: an edit or delete that skipped chat.domain.services
    would leave no revision (and a hard delete would take the revisions with it)."""

    inlines = [MessageRevisionInline]
    list_display = ["id", "room", "author", "text", "created_at", "edited_at", "deleted_at"]
    list_filter = ["room"]
    search_fields = ["text"]
    fields = readonly_fields = [
        "room",
        "author",
        "text",
        "client_id",
        "created_at",
        "edited_at",
        "deleted_at",
    ]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
