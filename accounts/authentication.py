"""REST authentication: simplejwt's, with the token's user read by a query compiled once.

Every REST request reads its token's user. simplejwt asks `User.objects.get(id=<claim>)`,
which builds and compiles the query each time: 0.36 ms of CPU per request here, against
0.12 ms for the same query compiled once (docs/performance.md, item 22). simplejwt's own
`get_user` still judges the user (exists, active, password unchanged when
CHECK_REVOKE_TOKEN is on); only the read is replaced.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models
from rest_framework_simplejwt import authentication
from rest_framework_simplejwt.exceptions import ExpiredTokenError, InvalidToken, TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.tokens import UntypedToken

from crm_backend.compiled_queries import compiled


class JWTAuthentication(authentication.JWTAuthentication):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.user_model = _UsersByCompiledQuery(self.user_model)

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


class UserModelStandIn:
    """Stands in for the user model in simplejwt's `get_user`, which asks
    `objects.get(<USER_ID_FIELD>=<claim>)` (simplejwt 5.5; tests/test_authentication.py and
    tests/test_handshakes.py fail if it stops asking that way). Subclasses say how the user
    of an id is read (`user_for`); simplejwt still judges the user."""

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


class _UsersByCompiledQuery(UserModelStandIn):
    STAND_INS = {"user_id": (-7_000_101, -7_000_102)}  # no user's ids

    def __init__(self, user_model) -> None:
        super().__init__(user_model)
        if not (self.id_field.unique and isinstance(self.id_field, models.IntegerField)):
            raise TypeError("USER_ID_FIELD must be a unique integer field")
        self._columns = [field.attname for field in user_model._meta.concrete_fields]

    def user_for(self, user_id):
        query = compiled(
            ("token user", self.model._meta.label, self.id_field.name),
            lambda stand_ins: self.model.objects.filter(
                **{self.id_field.name: stand_ins["user_id"]}
            ).values_list(*self._columns),
            self.STAND_INS,
            using=self.model.objects.db,
        )
        rows = query.rows(user_id=user_id)
        return self.model.from_db(query.using, self._columns, rows[0]) if rows else None
