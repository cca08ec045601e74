"""JWT authentication for WebSocket handshakes.

The middleware only *describes* who is connecting: it sets ``scope["user"]`` and, when a token
was given but refused, ``scope["auth_error"]``. It never closes the socket; the consumer decides,
so that every refusal reaches the browser as an error frame with a reason.

Tokens are validated by simplejwt's own ``JWTAuthentication``, so REST and WebSocket share one
validation (signature, algorithm, expiry, token type, user exists and is active).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser
from django.db import DatabaseError
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, ExpiredTokenError, TokenError
from rest_framework_simplejwt.tokens import UntypedToken

from chat.protocol import Rejection

logger = logging.getLogger(__name__)

# Cap on what we hand to the JWT decoder: real access tokens are a few hundred bytes.
MAX_TOKEN_LENGTH = 4096


def ticket_from_scope(scope: dict) -> str | None:
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    tickets = query.get("ticket")
    return tickets[0] if tickets and tickets[0] else None


def authenticate_ticket(ticket: str) -> TokenCheck:
    """A connection ticket from POST /api/chat/ws-ticket/: valid once, for a few seconds."""
    from accounts.tickets import ticket_redeem

    redeemed = ticket_redeem(ticket)
    if redeemed is None:
        return TokenCheck(AnonymousUser(), Rejection.TOKEN_INVALID)
    if not redeemed.user.is_active:
        return TokenCheck(AnonymousUser(), Rejection.USER_INACTIVE)
    return TokenCheck(redeemed.user, expires_at=redeemed.session_expires_at.timestamp())


def token_from_scope(scope: dict) -> str | None:
    """The raw token: an ``Authorization: Bearer`` header wins over ``?token=``."""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                return credentials.strip()
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    tokens = query.get("token")
    return tokens[0] if tokens and tokens[0] else None


def _refusal_for_invalid_token(raw_token: str) -> Rejection:
    """Tell an expired-but-genuine token apart from a forged or malformed one."""
    try:
        UntypedToken(raw_token)  # signature is checked before expiry
    except ExpiredTokenError:
        return Rejection.TOKEN_EXPIRED
    except TokenError:
        return Rejection.TOKEN_INVALID
    return Rejection.TOKEN_INVALID  # genuine but wrong type, e.g. a refresh token


@dataclass(frozen=True, slots=True)
class TokenCheck:
    """What a token says: the user, or why it is refused; and when it expires."""

    user: Any
    refusal: Rejection | None = None
    expires_at: float | None = None  # epoch seconds of the access token's `exp`


def authenticate_token(raw_token: str) -> TokenCheck:
    """Validate an access token exactly as the REST API does."""
    if len(raw_token) > MAX_TOKEN_LENGTH:
        return TokenCheck(AnonymousUser(), Rejection.TOKEN_INVALID)
    authentication = JWTAuthentication()
    try:
        validated = authentication.get_validated_token(raw_token.encode("latin-1", "replace"))
    except AuthenticationFailed:
        return TokenCheck(AnonymousUser(), _refusal_for_invalid_token(raw_token))
    try:
        user = authentication.get_user(validated)
    except AuthenticationFailed as error:
        # simplejwt puts its machine code in the detail dict: {"detail": ..., "code": ...}
        if str(error.detail.get("code", "")) == "user_inactive":
            return TokenCheck(AnonymousUser(), Rejection.USER_INACTIVE)
        return TokenCheck(AnonymousUser(), Rejection.TOKEN_INVALID)
    return TokenCheck(user, expires_at=float(validated["exp"]))


class JWTAuthMiddleware:
    """Sets ``scope["user"]``, ``scope["auth_error"]`` on a refused token and
    ``scope["token_expires_at"]``; never closes the socket."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        scope = dict(scope)
        check = TokenCheck(AnonymousUser())
        raw_token, ticket = token_from_scope(scope), ticket_from_scope(scope)
        if raw_token or ticket:
            if raw_token:
                check = await _checked(authenticate_token, raw_token)
            else:
                check = await _checked(authenticate_ticket, ticket)
            if check.refusal:
                logger.info(
                    "WebSocket authentication failed: %s (path %s)", check.refusal, scope["path"]
                )
            else:
                logger.info("User found in JWT: %s", check.user.username)
                logger.info("WebSocket user authenticated: %s", check.user.username)
        scope["user"], scope["auth_error"] = check.user, check.refusal
        scope["token_expires_at"] = check.expires_at
        return await self.app(scope, receive, send)


async def _checked(authenticate, credential: str) -> TokenCheck:
    try:
        return await database_sync_to_async(authenticate)(credential)
    except DatabaseError:
        logger.exception("WebSocket authentication: database unavailable")
        return TokenCheck(AnonymousUser(), Rejection.SERVICE_UNAVAILABLE)
