"""REST authentication: simplejwt's, answering every bad token with a code sockets share.

simplejwt's own rules judge the token and its user (signature, expiry, type; the user exists,
is active, and its password is unchanged when CHECK_REVOKE_TOKEN is on). Only through its
public hooks: a refused token says `token_expired` or `token_invalid` (as the WebSocket does)
instead of `token_not_valid`, and a user claim no user can have is `user_not_found` rather
than an error of the database.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from rest_framework_simplejwt import authentication
from rest_framework_simplejwt.exceptions import (
    AuthenticationFailed,
    ExpiredTokenError,
    InvalidToken,
    TokenError,
)
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.tokens import UntypedToken


class JWTAuthentication(authentication.JWTAuthentication):
    def get_user(self, validated_token):
        """simplejwt's user check, once the claim can name a user at all."""
        field = self.user_model._meta.get_field(jwt_settings.USER_ID_FIELD)
        if user_id_from_claim(field, validated_token.get(jwt_settings.USER_ID_CLAIM)) is None:
            raise AuthenticationFailed("User not found", code="user_not_found")
        return super().get_user(validated_token)

    def get_validated_token(self, raw_token):
        """simplejwt's check; a refusal says `token_expired` or `token_invalid`, as sockets do."""
        try:
            return super().get_validated_token(raw_token)
        except InvalidToken:
            code = token_refusal_code(raw_token.decode("latin-1"))
            raise InvalidToken({"detail": TOKEN_REFUSAL_DETAILS[code], "code": code}) from None


TOKEN_REFUSAL_DETAILS = {
    "token_expired": "access token expired; refresh it",
    "token_invalid": "access token is not valid; log in again to get a new one",
}


def token_refusal_code(raw_token: str) -> str:
    """Tell an expired-but-genuine token apart from a forged or malformed one."""
    try:
        UntypedToken(raw_token)  # signature is checked before expiry
    except ExpiredTokenError:
        return "token_expired"
    except TokenError:
        return "token_invalid"
    return "token_invalid"  # genuine but wrong type, e.g. a refresh token


def user_id_from_claim(field, claim):
    """The token's user claim as `field`'s value; None when no user can have it (simplejwt
    then says "user not found"). Out of the column's range counts as none: on SQLite such a
    value in a query raises instead of matching nothing."""
    if claim is None:
        return None
    try:
        user_id = field.to_python(claim)
        field.run_validators(user_id)
    except ValidationError:
        return None
    return user_id
