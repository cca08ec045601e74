"""OpenAPI: what every REST operation can answer besides success, documented once.

Every error goes through chat.api.errors.exception_handler in one shape (`ErrorSerializer`).
`AutoSchema` (REST_FRAMEWORK's DEFAULT_SCHEMA_CLASS) adds to each operation the errors it can
give, from what the operation is, so views do not each repeat them: 400 where it reads a body or
query parameters, 401 where it authenticates (or checks credentials), 403 where it has
permissions, 404 where it has path parameters, 429 where it is throttled.

`CharFieldRules` and `MessageTextRules` document the rules text must follow in a request:
DRF's (no NUL; a stripped field that may not be blank needs a character stripping keeps) and,
for a message, the domain's (chat.domain.services.message_text_check: not blank, at most
CHAT_MAX_MESSAGE_LENGTH characters; NUL allowed, as on the socket). Only JSON bodies are
documented (`map_parsers`).
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular import openapi
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework_simplejwt.views import TokenViewBase

# DRF refuses NUL in any text (ProhibitNullCharactersValidator). It strips text with Python's
# str.strip(), whose whitespace (str.isspace()) is not JSON Schema's \s: what must be left after
# stripping is one of the characters it keeps.
_PYTHON_WHITESPACE = (
    "\\t\\n\\u000b\\u000c\\r\\u001c-\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200a"
    "\\u2028\\u2029\\u202f\\u205f\\u3000"
)
NO_NUL = "^[^\\u0000]*$"
NOT_BLANK = f"^[^\\u0000]*[^\\u0000{_PYTHON_WHITESPACE}][^\\u0000]*$"
# A message's text may hold NUL (as on the socket): one character strip() keeps, anywhere.
MESSAGE_NOT_BLANK = f"[^{_PYTHON_WHITESPACE}]"
JSON = "application/json"


class ErrorSerializer(serializers.Serializer):
    """Every REST error: chat.api.errors.exception_handler's one shape."""

    code = serializers.CharField(help_text="for programs: the WebSocket's code where both mean it")
    detail = serializers.CharField(allow_blank=True, help_text="for people")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="validation errors only: what is wrong with each field",
    )


ERROR_DESCRIPTIONS = {
    400: "`invalid_request` (what is wrong with each field in `fields`), `invalid_json`, "
    "or a refusal of the request's content such as `empty_message` or `message_too_long`",
    401: "`authentication_required`, or the token or credentials were refused "
    "(`token_expired`, `token_invalid`, `user_not_found`, ...)",
    403: "not allowed, e.g. `not_room_admin`, `not_allowed`, `edit_window_expired`",
    404: "`not_found`, or what the path names does not exist for this user "
    "(`room_not_found`, `message_not_found`, `user_not_found`)",
    429: "`rate_limited`: try again after Retry-After seconds",
}


class AutoSchema(openapi.AutoSchema):
    def map_parsers(self):
        """The API speaks JSON; DRF's form parsers (for its browsable pages) go undocumented:
        a form cannot say what JSON can (an empty field there means no field)."""
        parsers = super().map_parsers()
        if parsers == ["multipart/form-data"]:  # an upload: its one way in
            return parsers
        return [media_type for media_type in parsers if media_type == JSON]

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        error = self.resolve_serializer(ErrorSerializer, "response").ref
        for status_code in self.error_status_codes(operation):
            operation["responses"].setdefault(
                str(status_code),
                {
                    "description": ERROR_DESCRIPTIONS[status_code],
                    "content": {JSON: {"schema": error}},
                },
            )
        return operation

    def error_status_codes(self, operation: dict) -> list[int]:
        locations = {parameter["in"] for parameter in operation.get("parameters", [])}
        guarded = any(not isinstance(p, AllowAny) for p in self.view.get_permissions())
        codes = []
        if "requestBody" in operation or "query" in locations:
            codes.append(400)
        # Any token is checked (and may be refused) where there are authenticators.
        if self.view.get_authenticators() or isinstance(self.view, TokenViewBase):
            codes.append(401)
        if guarded:
            codes.append(403)
        if "path" in locations:
            codes.append(404)  # also a path parameter the URL pattern does not match
        if self.view.get_throttles():
            codes.append(429)
        return codes


class CharFieldRules(OpenApiSerializerFieldExtension):
    """Text a request sends: no NUL; and when DRF strips it and refuses it blank, something
    left after stripping."""

    target_class = serializers.CharField
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        field = self.target
        if (
            direction == "request"
            and schema.get("type") == "string"
            and not {"pattern", "format"} & schema.keys()
        ):
            refuses_blank = field.trim_whitespace and not field.allow_blank
            schema["pattern"] = NOT_BLANK if refuses_blank else NO_NUL
        return schema


class MessageTextRules(OpenApiSerializerFieldExtension):
    """A message's text: blank is the domain's `empty_message`, too long `message_too_long`.

    A component of its own: DRF allows it blank (the domain refuses it), and drf-spectacular
    would add a blank alternative to an inline schema of a field that allows blank."""

    target_class = "chat.api.serializers.MessageTextField"
    priority = 1  # before CharFieldRules

    def get_name(self):
        return "MessageText"

    def map_serializer_field(self, auto_schema, direction):
        return {
            "type": "string",
            "minLength": 1,
            "maxLength": settings.CHAT_MAX_MESSAGE_LENGTH,
            "pattern": MESSAGE_NOT_BLANK,
        }
