"""REST authentication with `Authorization: Api-Key <key>` (apikeys.keys).

`request.user` is the key's service account, carrying the key's rooms (`api_key_room_ids`)
for the membership rule; `request.auth` is the ApiKey. A refused key is 401 with the code the
socket would say (`token_invalid`, `api_key_revoked`, `user_inactive`).
"""

from __future__ import annotations

from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from apikeys.keys import REFUSAL_DETAILS, key_authenticate

KEYWORD = "Api-Key"


def key_from_header(header: str) -> str | None:
    """The key of an `Authorization: Api-Key <key>` header; None for any other scheme."""
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != KEYWORD.lower():
        return None
    return credentials.strip()


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        text = key_from_header(get_authorization_header(request).decode("latin-1"))
        if text is None:
            return None  # another scheme's, or none: the other classes decide
        check = key_authenticate(text)
        if check.refusal is not None:
            raise AuthenticationFailed(REFUSAL_DETAILS[check.refusal], code=check.refusal)
        return check.user, check.key

    def authenticate_header(self, request) -> str:
        return KEYWORD
