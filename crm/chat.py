"""How the example CRM's deals take part in the chat: who may see a deal's room, and what a
deal's changes post there. Wired in CrmConfig.ready; the policy is named in
CHAT_RECORD_ACCESS_POLICIES ("crm.deal")."""

from __future__ import annotations

import logging

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models.signals import post_save, pre_save

from chat.domain import records
from crm.models import Deal

logger = logging.getLogger(__name__)


class DealPolicy:
    """A deal's owner and team see it, and whoever may view every deal (managers, superusers:
    Django's model permission crm.view_deal)."""

    def can_view(self, user, deal: Deal) -> bool:
        if not user.is_active:
            return False
        if user.pk == deal.owner_id or deal.team.filter(pk=user.pk).exists():
            return True
        return user.has_perm("crm.view_deal")

    def closed(self, deal: Deal) -> bool:
        return deal.closed  # a room opened for a won or lost deal starts read-only

    def users_with_access(self, deal: Deal):
        users = get_user_model().objects
        people = set(users.filter(pk=deal.owner_id)) | set(deal.team.all())
        return people | set(users.with_perm("crm.view_deal"))  # active ones, superusers too


def follow_deals() -> None:
    """A deal's owner or team changed: its room's access follows. Its stage changed: the room
    is told, and closes to new messages when the deal is won or lost (reopens otherwise)."""
    records.follow_record_model(Deal, m2m_fields=["team"])
    pre_save.connect(_remember_stage, sender=Deal, dispatch_uid="crm-deal-stage-before")
    post_save.connect(_stage_changed, sender=Deal, dispatch_uid="crm-deal-stage-after")


def _stage_saved(update_fields) -> bool:
    return update_fields is None or "stage" in update_fields


def _remember_stage(sender, instance: Deal, raw: bool = False, update_fields=None, **kwargs):
    if raw or instance.pk is None or not _stage_saved(update_fields):
        instance._stage_before = None
        return
    stored = Deal.objects.filter(pk=instance.pk).values_list("stage", flat=True).first()
    instance._stage_before = stored


def _stage_changed(
    sender, instance: Deal, created: bool, raw: bool = False, update_fields=None, **kwargs
) -> None:
    before, after = instance.__dict__.pop("_stage_before", None), instance.stage
    if raw or created or before is None or before == after or not _stage_saved(update_fields):
        return

    def announce() -> None:
        try:
            _announce_stage(instance, before, after)
        except Exception:  # the deal is saved; say so in the log, not as the saver's error
            logger.exception("stage change of deal %s not announced", instance.pk)

    transaction.on_commit(announce)


def _announce_stage(deal: Deal, before: str, after: str) -> None:
    if records.room_of_record(deal) is None:
        return  # nobody has talked about this deal yet: no room to tell
    records.system_message_post(
        deal,
        f"etapa alterada: {before} → {after}",
        {"event": "stage_changed", "from": before, "to": after},
    )
    records.room_set_read_only(deal, after in Deal.CLOSED_STAGES)
