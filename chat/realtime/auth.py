"""Who is connecting on a WebSocket: the credential in the handshake, and the user it names.

Nothing here closes a socket: the consumer decides, so that every refusal reaches the browser
as an error frame with a reason. There is no middleware: `ChatConsumer` authenticates in the
same database call that checks the room (chat.realtime.handshakes, one call for the
handshakes waiting together); a public room never touches the database, and a ticket
is spent only where needed.

Tokens are validated by simplejwt's own ``JWTAuthentication``, so REST and WebSocket share one
validation (signature, algorithm, expiry, token type, user exists and is active).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from django.contrib.auth.models import AnonymousUser
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed
from rest_framework_simplejwt.settings import api_settings as jwt_settings

from accounts.authentication import token_refusal_code, user_id_from_claim
from apikeys.authentication import key_from_header
from apikeys.keys import key_authenticate
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
    header = authorization_from_scope(scope)
    if header is not None:
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    tokens = query.get("token")
    return tokens[0] if tokens and tokens[0] else None


def authorization_from_scope(scope: dict) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            return value.decode("latin-1")
    return None


def api_key_from_scope(scope: dict) -> str | None:
    """An ``Authorization: Api-Key`` header's key (never from the URL, where it is logged)."""
    header = authorization_from_scope(scope)
    return key_from_header(header) if header is not None else None


def authenticate_api_key(text: str) -> TokenCheck:
    """A service account's API key (apikeys): its user carries the key's rooms, and a socket
    it opens closes when the key is revoked."""
    check = key_authenticate(text)
    if check.refusal is not None:
        return TokenCheck(AnonymousUser(), Rejection(check.refusal))
    return TokenCheck(check.user)


def _refusal_for_invalid_token(raw_token: str) -> Rejection:
    return Rejection(token_refusal_code(raw_token))


@dataclass(frozen=True, slots=True)
class TokenCheck:
    """What a token says: the user, or why it is refused; and when it expires."""

    user: Any
    refusal: Rejection | None = None
    expires_at: float | None = None  # epoch seconds of the access token's `exp`


def authenticate_token(raw_token: str) -> TokenCheck:
    """Validate an access token exactly as the REST API does."""
    return authenticate_tokens([raw_token])[0]


def authenticate_tokens(raw_tokens: list[str]) -> list[TokenCheck]:
    """`authenticate_token` for each token, with all their users read in one query.

    Concurrent handshakes are checked together (chat.realtime.handshakes); simplejwt's
    own `get_user` still applies its rules (user exists, is active, password unchanged)
    to each token.
    """
    authentication = JWTAuthentication()
    validated = [_validated_token(authentication, raw_token) for raw_token in raw_tokens]
    genuine = [token for token in validated if not isinstance(token, TokenCheck)]
    authentication.user_model = _UsersReadAtOnce(authentication.user_model, genuine)
    return [
        token if isinstance(token, TokenCheck) else _token_user(authentication, token)
        for token in validated
    ]


def _validated_token(authentication: JWTAuthentication, raw_token: str):
    """simplejwt's validated token, or the refusal of a token that is not one."""
    if len(raw_token) > MAX_TOKEN_LENGTH:
        return TokenCheck(AnonymousUser(), Rejection.TOKEN_INVALID)
    try:
        return authentication.get_validated_token(raw_token.encode("latin-1", "replace"))
    except AuthenticationFailed:
        return TokenCheck(AnonymousUser(), _refusal_for_invalid_token(raw_token))


def _token_user(authentication: JWTAuthentication, validated) -> TokenCheck:
    try:
        user = authentication.get_user(validated)
    except AuthenticationFailed as error:
        # simplejwt puts its machine code in the detail dict: {"detail": ..., "code": ...}
        if str(error.detail.get("code", "")) == "user_inactive":
            return TokenCheck(AnonymousUser(), Rejection.USER_INACTIVE)
        return TokenCheck(AnonymousUser(), Rejection.TOKEN_INVALID)
    return TokenCheck(user, expires_at=float(validated["exp"]))


class UserModelStandIn:
    """Stands in for the user model in simplejwt's `get_user`, which asks
    `objects.get(<USER_ID_FIELD>=<claim>)` (simplejwt 5.5; tests/test_handshakes.py fails if it
    stops asking that way). Subclasses say how the user of an id is read (`user_for`);
    simplejwt still judges the user."""

    def __init__(self, user_model) -> None:
        self.model = user_model
        self.DoesNotExist = user_model.DoesNotExist
        self.objects = self
        self.id_field = user_model._meta.get_field(jwt_settings.USER_ID_FIELD)

    def get(self, **lookup):
        (claim,) = lookup.values()
        user_id = user_id_from_claim(self.id_field, claim)
        user = None if user_id is None else self.user_for(user_id)
        if user is None:
            raise self.DoesNotExist
        return user

    def user_for(self, user_id):
        raise NotImplementedError


class _UsersReadAtOnce(UserModelStandIn):
    """The users the tokens name, read in one query, answer simplejwt's `get_user`."""

    def __init__(self, user_model, tokens) -> None:
        super().__init__(user_model)
        claims = (token.get(jwt_settings.USER_ID_CLAIM) for token in tokens)
        user_ids = {user_id_from_claim(self.id_field, claim) for claim in claims} - {None}
        users = user_model.objects.filter(**{f"{self.id_field.name}__in": user_ids})
        self._by_id = {getattr(user, self.id_field.attname): user for user in users}

    def user_for(self, user_id):
        return self._by_id.get(user_id)


@dataclass(frozen=True, slots=True)
class Credential:
    """What a handshake presents: an access token or a connection ticket."""

    kind: str  # "token", "ticket" or "api_key"
    value: str


def credential_from_scope(scope: dict) -> Credential | None:
    """The handshake's credential: an API key or a token in the header, then ``?token=``,
    then ``?ticket=``."""
    api_key = api_key_from_scope(scope)
    if api_key is not None:
        return Credential("api_key", api_key)
    raw_token = token_from_scope(scope)
    if raw_token:
        return Credential("token", raw_token)
    ticket = ticket_from_scope(scope)
    return Credential("ticket", ticket) if ticket else None


def authenticate_credentials(
    credentials: list[Credential], *, paths: list[str]
) -> list[TokenCheck]:
    """The user each credential names, or why it is refused; logged either way, never the
    secret. The tokens' users are read in one query.

    Runs in a database thread: it reads the users (and spends tickets).
    """
    tokens = iter(authenticate_tokens([c.value for c in credentials if c.kind == "token"]))
    checks = []
    for credential, path in zip(credentials, paths, strict=True):
        if credential.kind == "token":
            check = next(tokens)
        elif credential.kind == "api_key":
            check = authenticate_api_key(credential.value)
        else:
            check = authenticate_ticket(credential.value)
        if check.refusal:
            logger.info("WebSocket authentication failed: %s (path %s)", check.refusal, path)
        else:
            if credential.kind == "token":
                logger.info("User found in JWT: %s", check.user.username)
            logger.info("WebSocket user authenticated: %s", check.user.username)
        checks.append(check)
    return checks
