"""REST's one error shape, `{"code": ..., "detail": ...}`, and its table of domain refusals.

Every error a REST endpoint answers goes through `exception_handler` (REST_FRAMEWORK's
EXCEPTION_HANDLER): domain refusals by REST_REFUSALS, validation (with `fields`: what is wrong
with each field), authentication (accounts.authentication names simplejwt's `token_not_valid`
`token_expired` or `token_invalid`, as sockets do), throttling (`rate_limited`, with
Retry-After) and not-found. The codes are the WebSocket's where both transports mean the same.
"""

from __future__ import annotations

import logging

from django.db import DatabaseError
from django.http import Http404, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from chat.domain import refusals

logger = logging.getLogger(__name__)

REST_REFUSALS: dict[type[refusals.Refusal], int] = {
    refusals.RoomNotFound: status.HTTP_404_NOT_FOUND,
    refusals.NotAMember: status.HTTP_404_NOT_FOUND,  # as for any room outside the user's
    refusals.NotRoomAdmin: status.HTTP_403_FORBIDDEN,
    refusals.LastAdmin: status.HTTP_403_FORBIDDEN,
    refusals.MessageNotFound: status.HTTP_404_NOT_FOUND,
    refusals.NotAllowed: status.HTTP_403_FORBIDDEN,
    refusals.EditWindowExpired: status.HTTP_403_FORBIDDEN,
    refusals.EmptyMessage: status.HTTP_400_BAD_REQUEST,
    refusals.MessageTooLong: status.HTTP_400_BAD_REQUEST,
    # As a message_id of another room is for read markers: not found here (the socket's code).
    refusals.ReplyNotInRoom: status.HTTP_404_NOT_FOUND,
    refusals.InvalidEmoji: status.HTTP_400_BAD_REQUEST,
    refusals.TooManyReactions: status.HTTP_409_CONFLICT,  # the message's state, not the request
    refusals.FileTooLarge: status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    refusals.FileTypeNotAllowed: status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    refusals.AttachmentNotUsable: status.HTTP_404_NOT_FOUND,  # as a reply_to of another room
    refusals.AttachmentNotFound: status.HTTP_404_NOT_FOUND,
    refusals.UserNotFound: status.HTTP_404_NOT_FOUND,
    refusals.RoomReadOnly: status.HTTP_409_CONFLICT,  # the room's state, not the request
    refusals.RecordNotFound: status.HTTP_404_NOT_FOUND,
    refusals.InvalidRequest: status.HTTP_400_BAD_REQUEST,
}

# DRF's codes renamed to the WebSocket's, where both transports mean the same thing.
_CODES = {
    "not_authenticated": "authentication_required",
    "throttled": "rate_limited",
    "parse_error": "invalid_json",
    "invalid": "invalid_request",
    "not_found": "not_found",
}


def error_body(code: str, detail: str, **extra) -> dict:
    return {"code": code, "detail": detail, **extra}


def exception_handler(exc, context):
    """DRF's handler (status, headers such as Retry-After), answering in the one shape."""
    if isinstance(exc, refusals.Refusal):
        return Response(error_body(exc.code, exc.detail), status=REST_REFUSALS[type(exc)])
    if isinstance(exc, DatabaseError):
        # As a socket's `not_persisted`: nothing was stored; retrying (same client_id) is safe.
        logger.exception("database error answering %s", context["request"].path)
        detail = "the database is unavailable or busy; nothing was stored, retry later"
        return Response(error_body("service_unavailable", detail), status=503)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "not found")
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # not an API error: a 500, logged by Django
    response.data = _body(exc)
    return response


def _body(exc: exceptions.APIException) -> dict:
    if isinstance(exc, exceptions.ValidationError):
        return error_body(
            "invalid_request", _first_message(exc.detail), fields=_field_messages(exc.detail)
        )
    detail = exc.detail
    if isinstance(detail, dict):  # simplejwt: {"detail": ..., "code": ...}
        code = str(detail.get("code") or exc.default_code)
        return error_body(_CODES.get(code, code), str(detail.get("detail", "")))
    code = getattr(detail, "code", None) or exc.default_code
    return error_body(_CODES.get(code, code), str(detail))


def _field_messages(detail):
    """Each field's errors as a list of strings, as documented: a list's or a nested object's
    errors ({"0": [...]}) become "0: ..." entries of their field."""
    if not isinstance(detail, dict):
        return detail
    return {field: _messages(errors) for field, errors in detail.items()}


def _messages(errors, prefix: str = "") -> list[str]:
    if isinstance(errors, dict):
        return [m for key, inner in errors.items() for m in _messages(inner, f"{prefix}{key}: ")]
    if isinstance(errors, list):
        return [m for inner in errors for m in _messages(inner, prefix)]
    return [f"{prefix}{errors}"]


def _first_message(detail) -> str:
    """The first error of a validation error's detail, with the field it is about."""
    if isinstance(detail, dict):
        for field, errors in detail.items():
            message = _first_message(errors)
            return message if field == "non_field_errors" else f"{field}: {message}"
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return str(detail)


def page_not_found(request, exception):
    """Django's handler404: under /api/, a path no view matches answers in the one shape too."""
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("not_found", "no such endpoint"), status=404)
    return defaults.page_not_found(request, exception)
