from django.apps import AppConfig


class ChatConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "chat"

    def ready(self):
        from chat import delivery, events, signals  # noqa: F401 - signals connects receivers

        events.publisher_install(delivery.publish)
