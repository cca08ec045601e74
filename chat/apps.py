from django.apps import AppConfig


class ChatConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "chat"

    def ready(self):
        from django.db.models.signals import post_migrate

        from chat.domain import events, notifications, search, signals  # noqa: F401 - signals
        from chat.realtime import delivery, presence

        post_migrate.connect(_search_index_ensure, sender=self)

        # The wiring: the domain announces, the real-time tier delivers; who is online (for
        # @here) is the real-time tier's presence.
        events.publisher_install(delivery.publish)
        notifications.online_users_install(
            lambda room_id: presence.presence_store().online_user_ids(room_id)
        )


def _search_index_ensure(sender, using="default", **kwargs):
    from django.db import connections

    from chat.domain import search

    if search.sqlite_index_ensure(connections[using]):
        import logging

        logging.getLogger("chat").info("search index triggers were missing: put back, rebuilt")
