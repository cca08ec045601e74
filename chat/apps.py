from django.apps import AppConfig


class ChatConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "chat"

    def ready(self):
        from chat.domain import events, signals  # noqa: F401 - signals connects its receivers
        from chat.realtime import delivery

        # The wiring: the domain announces, the real-time tier delivers.
        events.publisher_install(delivery.publish)
