"""API keys in the Django admin: made on the add page or by the "create a key" action, each
shown once (a message on the next page); revoked by an action. A key's account and rooms are
fixed once it exists: for other rooms, make another key."""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model

from apikeys.keys import key_create, key_revoke, key_secret_set
from apikeys.models import ApiKey
from chat.domain import services


class ApiKeyForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ["user", "name", "rooms"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "user" in self.fields:  # service accounts only (manage.py create_api_key makes them)
            self.fields["user"].queryset = get_user_model().objects.filter(is_bot=True)


def _show_once(request, key: ApiKey, text: str) -> None:
    messages.warning(
        request,
        f"API key {key.prefix} of {key.user.username}: {text} — shown this once, store it now; "
        "only a hash is kept.",
    )


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyForm
    list_display = ["prefix", "name", "user", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["prefix", "name", "user__username"]
    filter_horizontal = ["rooms"]
    actions = ["create_key_like", "revoke_keys"]

    def get_readonly_fields(self, request, obj=None):
        fixed = ["user", "rooms"] if obj is not None else []
        return [*fixed, "prefix", "created_at", "last_used_at", "revoked_at"]

    def save_model(self, request, obj, form, change):
        text = key_secret_set(obj) if not change else None
        super().save_model(request, obj, form, change)
        if text is not None:
            _show_once(request, obj, text)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        if not change:  # the account joins the key's rooms, as manage.py create_api_key does
            for room in form.instance.rooms.all():
                services.membership_add(room=room, user=form.instance.user)

    @admin.action(description="Create a key like each selected one (same account and rooms)")
    def create_key_like(self, request, queryset):
        for key in queryset.select_related("user").prefetch_related("rooms"):
            new, text = key_create(user=key.user, rooms=key.rooms.all(), name=key.name)
            _show_once(request, new, text)

    @admin.action(description="Revoke selected keys (their sockets close at once)")
    def revoke_keys(self, request, queryset):
        revoked = sum(key_revoke(key) for key in queryset)
        self.message_user(request, f"{revoked} key(s) revoked.")
