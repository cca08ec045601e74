"""Log hygiene: JSON lines when asked (CHAT_LOG_FORMAT=json), and no credential in any line.

Browsers cannot set headers on a WebSocket, so tokens travel in query strings
(`?token=<JWT>`, `?ticket=`), and servers' access logs print request paths with their query:
uvicorn's `uvicorn.access` / `uvicorn.error` loggers and daphne's access log writer
(chat/adapters/access_log.py). `redact` rewrites those values to `[redacted]`.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from urllib.parse import unquote_plus

REDACTED = "[redacted]"
# Query parameters (and `key=value` text) whose value is a credential: token, ticket,
# access / refresh (simplejwt's names), api_key / apikey / api-key, password, secret;
# Django's cookies sessionid, csrftoken.
_SECRET_NAME = re.compile(
    r"(?i)(?:[\w.-]*[_-])?(?:token|ticket|access|refresh|api[_-]?key|password|secret)"
    r"|sessionid|csrftoken"  # Django's cookies, in a Cookie header's text
)
# A `name=value` after a separator. Separators and `=` may be percent-encoded (%3F ? %26 &
# %20 space %23 #, %3D =): a URL inside another's value (`?next=/ws%3Ftoken%3D<JWT>`); the
# name too, as parse_qs decodes it (`?%74oken=<JWT>` authenticates like `?token=`).
_PARAM = re.compile(
    r"(?i)(^|[?&;#\s\"']|%3F|%26|%20|%23)"
    r"((?:[\w.+-]|%(?!3F|26|20|23|3D)[0-9A-F]{2})+)(=|%3D)([^&;#\s\"']*)"
)
# An Authorization header's credentials, should a header's text reach a message.
_AUTHORIZATION = re.compile(r"(?i)\b(bearer|api-key)(\s+)[^\s\"',;]+")


def redact(text: str) -> str:
    """`text` with every credential-like query value replaced by [redacted]."""
    if "=" in text or "%3" in text:  # `=` or %3D, else nothing to look at
        text = _PARAM.sub(_redacted_param, text)
    if "earer" in text or "EARER" in text or "pi-" in text or "PI-" in text:  # no lower() copy
        text = _AUTHORIZATION.sub(lambda match: match.group(1) + match.group(2) + REDACTED, text)
    return text


def _redacted_param(match: re.Match) -> str:
    separator, name, equals, value = match.groups()
    if _SECRET_NAME.fullmatch(unquote_plus(name)):
        return f"{separator}{name}{equals}{REDACTED}"
    if "=" in value or "%3" in value:
        # Not a credential, but its value may hold a URL with one: `path=/ws/?token=<JWT>`,
        # `next=/ws%3Fticket%3D<ticket>`.
        value = _PARAM.sub(_redacted_param, value)
    return f"{separator}{name}{equals}{value}"


def _redacted_value(value):
    """An extra's value for a JSON line: JSON's own types kept (strings redacted), anything
    else as its redacted text (Django's `request` extra prints the query string)."""
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, list | tuple):
        return [_redacted_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _redacted_value(item) for key, item in value.items()}
    return redact(str(value))


def _redacted_arg(value):
    return redact(value) if isinstance(value, str) else value


class RedactSecrets(logging.Filter):
    """Redacts a record's string arguments, keeping its shape (uvicorn's access formatter
    unpacks its five); if the message still shows a secret (`"?token=%s", jwt`), the record
    becomes its redacted text."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple):
            record.args = tuple(_redacted_arg(value) for value in args)
        elif isinstance(args, dict):
            record.args = {key: _redacted_arg(value) for key, value in args.items()}
        try:
            message = record.getMessage()
        except Exception:  # a bad format, which logging would print with its raw arguments
            record.msg, record.args = redact(f"{record.msg} {record.args!r}"), None
            return True
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            # A traceback can quote a URL (an exception's message); formatters print
            # exc_text when set, so this is what they write.
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_TRACEBACKS = logging.Formatter()


# What every LogRecord has; anything else was passed as `extra=` and goes in the JSON too.
_RECORD_ATTRIBUTES = frozenset(
    set(vars(logging.LogRecord("", 0, "", 0, "", (), None)))
    | {"message", "asctime", "taskName", "color_message"}  # uvicorn's coloured copy of the text
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the record's extras, and the
    exception's traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and key not in entry:
                entry[key] = _redacted_value(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = redact(record.exc_text)
        if record.stack_info:
            entry["stack"] = redact(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


# Loggers of servers that configure their own handlers (uvicorn at start, before Django's
# LOGGING) and print request paths with their query: filtered where they log, whatever handler
# they write to. daphne's access log is no logger: chat/adapters/access_log.py.
# uvicorn.asgi: `--log-level trace` prints every scope (query string, Authorization, cookies).
SERVER_LOGGERS = ("uvicorn.access", "uvicorn.error", "uvicorn.asgi", "django.server")


def protect_server_loggers(*, json_lines: bool) -> None:
    """Redact SERVER_LOGGERS' records; with json_lines, their own handlers write JSON too."""
    for name in SERVER_LOGGERS:
        server_logger = logging.getLogger(name)
        if not any(isinstance(known, RedactSecrets) for known in server_logger.filters):
            server_logger.addFilter(RedactSecrets())
        if json_lines:
            for handler in server_logger.handlers:
                handler.setFormatter(JsonFormatter())
