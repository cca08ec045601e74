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

REDACTED = "[redacted]"
# Query parameters (and `key=value` text) whose value is a credential: token, ticket,
# access / refresh (simplejwt's names), api_key / apikey / api-key, password, secret.
_SECRET_VALUE = re.compile(
    r"(?i)((?:^|[?&;\s\"'])(?:[\w.-]*[_-])?"
    r"(?:token|ticket|access|refresh|api[_-]?key|password|secret)=)([^&;\s\"']+)"
)


def redact(text: str) -> str:
    """`text` with every credential-like query value replaced by [redacted]."""
    if "=" not in text:
        return text  # the common case: nothing to look at
    return _SECRET_VALUE.sub(lambda match: match.group(1) + REDACTED, text)


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
        return True


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
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


# Loggers of servers that configure their own handlers (uvicorn at start, before Django's
# LOGGING) and print request paths with their query: filtered where they log, whatever handler
# they write to. daphne's access log is no logger: chat/adapters/access_log.py.
SERVER_LOGGERS = ("uvicorn.access", "uvicorn.error", "django.server")


def protect_server_loggers(*, json_lines: bool) -> None:
    """Redact SERVER_LOGGERS' records; with json_lines, their own handlers write JSON too."""
    for name in SERVER_LOGGERS:
        server_logger = logging.getLogger(name)
        if not any(isinstance(known, RedactSecrets) for known in server_logger.filters):
            server_logger.addFilter(RedactSecrets())
        if json_lines:
            for handler in server_logger.handlers:
                handler.setFormatter(JsonFormatter())
