"""daphne's access log without credentials: its lines pass chat.observability.logs.redact.

daphne writes its access log itself (daphne.access.AccessLogGenerator, to stdout or
`--access-log FILE`), not through `logging`, so no logging filter sees it. HTTP lines carry the
request's query string (`GET /x?token=<JWT>`): every line's request text is redacted before it
is written. Written for daphne 4.2.3 (`write_entry(host, date, request, ...)`); the wiring
installs it before daphne builds its access log writer (daphne imports the application first).
"""

from __future__ import annotations

from daphne.access import AccessLogGenerator

from chat.observability.logs import redact

_daphne_write_entry = AccessLogGenerator.write_entry


def redact_access_log() -> None:
    if getattr(AccessLogGenerator.write_entry, "redacts", False):
        return

    def write_entry(self, host, date, request, *args, **kwargs):
        return _daphne_write_entry(self, host, date, redact(request), *args, **kwargs)

    write_entry.redacts = True
    AccessLogGenerator.write_entry = write_entry
