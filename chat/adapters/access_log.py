"""daphne's access log without credentials, and in JSON with CHAT_LOG_FORMAT=json.

daphne writes its access log itself (daphne.access.AccessLogGenerator, to stdout or
`--access-log FILE`), not through `logging`, so no logging filter or formatter sees it. Its
HTTP lines carry the request's query string (`GET /x?token=<JWT>`): every line's request text
passes chat.observability.logs.redact before it is written, to the same stream. Written for
daphne 4.2.3 (`write_entry(host, date, request, status, length, ...)`); the wiring installs it
before daphne builds its writer (daphne imports the application first).

On another daphne (or with CHAT_ADAPTERS_OFF=access_log) daphne's own writer is used, but
still redacted: redact_access_log_stream wraps the stream it is given (its one constructor
argument since daphne 1), so a credential never depends on a version match (no JSON then).
"""

from __future__ import annotations

import json
from datetime import UTC

from daphne.access import AccessLogGenerator
from django.conf import settings

from chat.observability.logs import redact

_daphne_write_entry = AccessLogGenerator.write_entry


def redact_access_log() -> None:
    if getattr(AccessLogGenerator.write_entry, "redacts", False):
        return
    json_lines = settings.CHAT_LOG_FORMAT == "json"

    def write_entry(self, host, date, request, status=None, length=None, *args, **kwargs):
        request = redact(request)
        if json_lines:
            return self.stream.write(_json_entry(host, date, request, status, length) + "\n")
        return _daphne_write_entry(self, host, date, request, status, length, *args, **kwargs)

    write_entry.redacts = True
    AccessLogGenerator.write_entry = write_entry


def _json_entry(host, date, request, status, length) -> str:
    entry = {
        "time": date.astimezone(UTC).isoformat(timespec="milliseconds"),  # daphne's is local
        "level": "INFO",
        "logger": "daphne.access",
        "message": f"{host} {request} {status or '-'}",
        "client": host,
        "request": request,
        "status": status,
        "bytes": length,
    }
    return json.dumps(entry, ensure_ascii=False)


class _RedactedStream:
    """A text stream whose every write is redacted first."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(redact(text))

    def __getattr__(self, name):  # flush, close, fileno...
        return getattr(self._stream, name)


_daphne_init = AccessLogGenerator.__init__


def redact_access_log_stream() -> None:
    if getattr(AccessLogGenerator.__init__, "redacts", False):
        return

    def __init__(self, stream, *args, **kwargs):
        _daphne_init(self, _RedactedStream(stream), *args, **kwargs)

    __init__.redacts = True
    AccessLogGenerator.__init__ = __init__
