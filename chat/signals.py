"""A user deactivated while connected is disconnected from every room at once."""

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from chat import events
from chat.models import Membership
from chat.protocol import Rejection


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="chat_user_deactivated")
def close_sockets_of_deactivated_user(sender, instance, created, **kwargs):
    if created or instance.is_active:
        return
    room_ids = list(Membership.objects.filter(user=instance).values_list("room_id", flat=True))
    transaction.on_commit(
        lambda: events.notify_member_removed_from(
            room_ids, instance.pk, reason=Rejection.USER_INACTIVE
        )
    )
