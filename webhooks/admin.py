from django import forms
from django.contrib import admin, messages
from django.utils import timezone

from webhooks.destinations import DestinationRefused, destination_check
from webhooks.models import WebhookDelivery, WebhookSubscription


class WebhookSubscriptionForm(forms.ModelForm):
    url = forms.URLField(max_length=2000, assume_scheme="https")

    class Meta:
        model = WebhookSubscription
        fields = ["url", "events", "room", "record_type", "active"]

    def clean_url(self):
        url = self.cleaned_data["url"]
        try:
            destination_check(url)  # the same rule as the API's (and every delivery's)
        except DestinationRefused as refused:
            raise forms.ValidationError(str(refused)) from None
        return url


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(admin.ModelAdmin):
    """Operators' place for record-type subscriptions (the API only makes a room's)."""

    form = WebhookSubscriptionForm
    list_display = ["id", "url", "room", "record_type", "active", "created_at"]
    list_filter = ["active", "record_type"]
    raw_id_fields = ["room"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change:  # the secret, once: it is never shown again (nor logged)
            self.message_user(
                request, f"Signing secret (shown once): {obj.secret}", level=messages.WARNING
            )


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ["delivery_id", "event", "subscription", "status", "attempts", "created_at"]
    list_filter = ["status", "event"]
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]
    actions = ["retry_now"]

    def has_add_permission(self, request):
        return False  # deliveries come from changes only

    @admin.action(description="Retry now (failed or pending)")
    def retry_now(self, request, queryset):
        count = queryset.exclude(status=WebhookDelivery.Status.DELIVERED).update(
            status=WebhookDelivery.Status.PENDING, attempts=0, next_attempt_at=timezone.now()
        )
        self.message_user(request, f"{count} deliveries due again")
