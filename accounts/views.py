import time

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.views import TokenObtainPairView

from accounts.serializers import UserSerializer
from accounts.throttling import ClientAddressScopedRateThrottle
from accounts.tickets import ticket_issue


class ConnectionTicketSerializer(serializers.Serializer):
    ticket = serializers.CharField()
    expires_in = serializers.IntegerField()


class LoginView(TokenObtainPairView):
    """Username and password in, `{access, refresh}` out; throttled against guessing."""

    throttle_classes = [ClientAddressScopedRateThrottle]
    throttle_scope = "login"


class MeView(APIView):
    @extend_schema(responses=UserSerializer)
    def get(self, request: Request) -> Response:
        """The user the token belongs to."""
        return Response(UserSerializer(request.user).data)


TICKETS_NOT_FOR_KEYS = (
    "API keys open sockets with their own 'Authorization: Api-Key' header, not with tickets"
)


class ConnectionTicketView(APIView):
    @extend_schema(request=None, responses={201: ConnectionTicketSerializer})
    def post(self, request: Request) -> Response:
        """A single-use ticket for `?ticket=` on a WebSocket URL, valid CHAT_TICKET_SECONDS.

        Keeps long-lived tokens out of URLs (and proxy logs). The socket it opens closes when
        the access token used here expires."""
        if getattr(request.user, "api_key_room_ids", None) is not None:
            # An API key's scope would not travel with the ticket; and a service account
            # sends its key in the socket's own Authorization header.
            raise PermissionDenied(TICKETS_NOT_FOR_KEYS, code="not_allowed")
        if request.auth is not None and "exp" in request.auth:
            token_expires_at = float(request.auth["exp"])
        else:  # session-authenticated (admin pages): as long as a fresh access token
            token_expires_at = (
                time.time() + settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"].total_seconds()
            )
        ticket = ticket_issue(user=request.user, token_expires_at=token_expires_at)
        return Response(
            {"ticket": ticket, "expires_in": settings.CHAT_TICKET_SECONDS},
            status=status.HTTP_201_CREATED,
        )
