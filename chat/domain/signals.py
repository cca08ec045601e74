"""A user deactivated while connected is disconnected from every room at once."""

from django.conf import settings
from django.db.models.signals import post_save
from django.dispatch import receiver

from chat.domain import services


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="chat_user_deactivated")
def close_sockets_of_deactivated_user(sender, instance, created, **kwargs):
    if created or instance.is_active:
        return
    services.user_deactivated(user=instance)
