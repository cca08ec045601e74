from django.apps import AppConfig


class ChatConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "chat"

    def ready(self):
        from chat.domain import events, notifications, signals  # noqa: F401 - signals connects
        from chat.realtime import delivery, presence

        # The wiring: the domain announces, the real-time tier delivers; who is online (for
        # @here) is the real-time tier's presence.
        events.publisher_install(delivery.publish)
        notifications.online_users_install(
            lambda room_id: presence.presence_store().online_user_ids(room_id)
        )
