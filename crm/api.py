"""The example CRM's REST API: the deals a user may see, a new deal, and changing one (its
owner, or a user with crm.change_deal). What the test page and the tests use to move a deal
along; its answers speak the chat's vocabulary (errors as chat.api.errors shapes them)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models import Q
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, permissions, serializers
from rest_framework.exceptions import PermissionDenied

from chat.api.schema import ErrorSerializer
from chat.api.serializers import TextField
from chat.domain import records, refusals
from crm.models import Deal

USER_NOT_FOUND = OpenApiResponse(ErrorSerializer, description="`user_not_found`: owner or team")


class TeamField(serializers.ListField):
    """Users' ids in and out (DRF's related fields would answer an unknown id 400, not the
    chat's 404 `user_not_found`)."""

    child = serializers.IntegerField(min_value=1)

    def to_representation(self, team) -> list[int]:
        return sorted(user.pk for user in team.all())


class DealSerializer(serializers.ModelSerializer):
    title = TextField(max_length=200)
    owner = serializers.IntegerField(
        source="owner_id", required=False, min_value=1, help_text="a user's id (default: you)"
    )
    team = TeamField(required=False, help_text="users' ids")
    room = serializers.SerializerMethodField(help_text="the deal's chat room, if it has one yet")

    class Meta:
        model = Deal
        fields = ["id", "title", "owner", "team", "stage", "created_at", "room"]
        read_only_fields = ["id", "created_at", "room"]

    def get_room(self, deal: Deal) -> str | None:
        room = records.room_of_record(deal)
        return str(room.pk) if room else None

    def validate_owner(self, user_id: int) -> int:
        return active_users([user_id])[0].pk

    def validate_team(self, user_ids: list[int]) -> list:
        return active_users(user_ids)

    def create(self, validated: dict) -> Deal:
        team = validated.pop("team", [])
        deal = Deal.objects.create(**validated)
        deal.team.set(team)
        return deal

    def update(self, deal: Deal, validated: dict) -> Deal:
        team = validated.pop("team", None)
        for field, value in validated.items():
            setattr(deal, field, value)
        deal.save()
        if team is not None:
            deal.team.set(team)
        return deal


def active_users(user_ids: list[int]) -> list:
    found = {
        user.pk: user for user in get_user_model().objects.filter(pk__in=user_ids, is_active=True)
    }
    if set(user_ids) - found.keys():
        raise refusals.UserNotFound()
    return [found[user_id] for user_id in user_ids]


def deals_for(user):
    if user.has_perm("crm.view_deal"):
        return Deal.objects.all()
    return Deal.objects.filter(Q(owner=user) | Q(team=user)).distinct()


@extend_schema_view(post=extend_schema(responses={201: DealSerializer, 404: USER_NOT_FOUND}))
class DealList(generics.ListCreateAPIView):
    """The deals the user may see; a new deal (its owner: the user, unless said otherwise)."""

    serializer_class = DealSerializer
    permission_classes = [permissions.IsAuthenticated]
    pagination_class = None

    def get_queryset(self):
        return deals_for(self.request.user).prefetch_related("team")

    def perform_create(self, serializer):
        serializer.save(owner_id=serializer.validated_data.get("owner_id", self.request.user.pk))


class DealDetail(generics.RetrieveUpdateAPIView):
    """One deal; its owner (or a user with crm.change_deal) changes it."""

    serializer_class = DealSerializer
    permission_classes = [permissions.IsAuthenticated]
    http_method_names = ["get", "patch"]

    def get_object(self) -> Deal:
        deal = deals_for(self.request.user).filter(pk=self.kwargs["pk"]).first()
        if deal is None:
            raise refusals.RecordNotFound("no such deal, or not one you may see")
        if self.request.method == "PATCH":
            user = self.request.user
            if deal.owner_id != user.pk and not user.has_perm("crm.change_deal"):
                raise PermissionDenied("only the deal's owner may change it")
        return deal
