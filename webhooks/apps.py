from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "webhooks"
    verbose_name = "Webhooks"

    def ready(self):
        from chat.domain import events
        from webhooks import outbox

        # The wiring: every change the domain announces is offered to the outbox inside its
        # transaction; the domain knows nothing of webhooks.
        events.recorder_install(outbox.record, interested=outbox.room_has_subscriptions)
