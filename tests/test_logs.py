"""Log hygiene without a server: what redact rewrites, and the JSON formatter's lines."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from chat.observability.logs import JsonFormatter, RedactSecrets, redact
from tests.e2e.server import PROJECT_DIR

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoiMiJ9.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"GET /ws/chat/r/?token={JWT}", "GET /ws/chat/r/?token=[redacted]"),
        (f"/x?a=1&ticket={JWT}&b=2", "/x?a=1&ticket=[redacted]&b=2"),
        ("/x?access=a&refresh=b", "/x?access=[redacted]&refresh=[redacted]"),
        (
            "/x?api_key=k1&apikey=k2&x-api-key=k3",
            "/x?api_key=[redacted]&apikey=[redacted]&x-api-key=[redacted]",
        ),
        (f"/x?ACCESS_TOKEN={JWT}", "/x?ACCESS_TOKEN=[redacted]"),
        ('"WebSocket /ws/?token=abc" [accepted]', '"WebSocket /ws/?token=[redacted]" [accepted]'),
        # parse_qs decodes names: `%74oken` authenticates as `token`
        (f"/x?%74oken={JWT}", "/x?%74oken=[redacted]"),
        (f"/x?tok%65n={JWT}&a=1", "/x?tok%65n=[redacted]&a=1"),
        (f"/x?next=%2Fws%3Fticket%3D{JWT}", "/x?next=%2Fws%3Fticket%3D[redacted]"),
        (f"/x?token=a&token={JWT}", "/x?token=[redacted]&token=[redacted]"),
        (f"/x#access_token={JWT}", "/x#access_token=[redacted]"),
        (f"path=/ws/?token={JWT}", "path=/ws/?token=[redacted]"),
        (f"Authorization: Bearer {JWT}", "Authorization: Bearer [redacted]"),
        ("/x?username=maria&room=1", "/x?username=maria&room=1"),  # not credentials
        ("close=4401 user=maria", "close=4401 user=maria"),
    ],
)
def test_redact(text, expected):
    assert redact(text) == expected


def test_the_filter_keeps_uvicorns_five_arguments():
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/healthz?token={JWT}", "1.1", 200),
        None,
    )
    assert RedactSecrets().filter(record)
    assert record.args == ("127.0.0.1:5000", "GET", "/healthz?token=[redacted]", "1.1", 200)
    assert JWT not in record.getMessage()


def test_a_json_line_carries_time_level_logger_message_and_extras():
    record = logging.LogRecord(
        "chat.realtime", logging.WARNING, __file__, 1, "rejected %s", (f"?ticket={JWT}",), None
    )
    record.room_type = "group"  # as logger.warning(..., extra={"room_type": "group"})
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "WARNING" and entry["logger"] == "chat.realtime"
    assert entry["message"] == "rejected ?ticket=[redacted]"
    assert entry["room_type"] == "group"
    assert entry["time"].endswith("+00:00")


def test_chat_log_format_json_makes_every_line_json():
    script = (
        "import django, logging; django.setup(); "
        f"logging.getLogger('chat').warning('socket ?token=%s', '{JWT}', extra={{'code': 4401}})"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT_DIR,
        env={
            "DJANGO_SETTINGS_MODULE": "crm_backend.settings",
            "CHAT_LOG_FORMAT": "json",
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert lines[-1]["message"] == "socket ?token=[redacted]" and lines[-1]["code"] == 4401
    assert JWT not in done.stderr


def test_a_json_line_redacts_the_extras_djangos_request_included(rf):
    from django.utils.log import log_response

    request = rf.get(f"/api/chat/rooms/?token={JWT}")
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    django_request = logging.getLogger("django.request")
    django_request.addHandler(handler)
    try:
        response = type("Response", (), {"status_code": 404})()
        log_response("Not Found: %s", request.path, response=response, request=request)
    finally:
        django_request.removeHandler(handler)
    (record,) = records
    record.nested = {"url": f"/ws/?ticket={JWT}"}
    line = JsonFormatter().format(record)
    assert JWT not in line, line
    entry = json.loads(line)
    assert entry["status_code"] == 404 and "token=[redacted]" in entry["request"]
    assert entry["nested"] == {"url": "/ws/?ticket=[redacted]"}


def _record_with_traceback() -> logging.LogRecord:
    try:
        raise ValueError(f"could not open /ws/?token={JWT}")
    except ValueError:
        return logging.LogRecord("chat", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())


def test_tracebacks_are_redacted_in_json_and_plain_lines():
    assert JWT not in JsonFormatter().format(_record_with_traceback())
    record = _record_with_traceback()
    assert RedactSecrets().filter(record)
    plain = logging.Formatter("%(levelname)s %(message)s").format(record)
    assert "ValueError: could not open /ws/?token=[redacted]" in plain and JWT not in plain


@pytest.mark.parametrize("why", ["another daphne", "switched off"])
def test_daphnes_own_access_log_is_redacted_too(why, monkeypatch, settings):
    """The access_log adapter not installed (another daphne version, CHAT_ADAPTERS_OFF):
    daphne's own writer prints the line, still without the credential."""
    import io

    from daphne.access import AccessLogGenerator

    from chat import adapters
    from chat.adapters import access_log

    monkeypatch.setattr(AccessLogGenerator, "write_entry", access_log._daphne_write_entry)
    monkeypatch.setattr(AccessLogGenerator, "__init__", AccessLogGenerator.__init__)  # restored
    monkeypatch.setattr(adapters, "_enabled", set())
    if why == "another daphne":  # every adapter mismatched: none of the others is re-installed
        monkeypatch.setattr(adapters, "version_mismatches", lambda name: ["daphne 9, not 4.2.3"])
    else:
        settings.CHAT_ADAPTERS_OFF = list(adapters.WRITTEN_FOR)
    adapters.install()
    stream = io.StringIO()
    details = {"client": "203.0.113.9:5000", "method": "GET", "status": 200, "size": 2}
    AccessLogGenerator(stream)("http", "complete", {**details, "path": f"/healthz?token={JWT}"})
    assert "GET /healthz?token=[redacted]" in stream.getvalue() and JWT not in stream.getvalue()


def test_uvicorns_trace_of_a_scope_shows_no_credential():
    """`uvicorn --log-level trace` logs every scope (uvicorn.asgi): query string and headers."""
    from chat.observability.logs import protect_server_loggers

    protect_server_loggers(json_lines=False)
    scope = {
        "path": "/ws/chat/1/",
        "query_string": f"token={JWT}".encode(),
        "headers": [
            (b"authorization", f"Bearer {JWT}".encode()),
            (b"cookie", f"csrftoken=c-123; sessionid={JWT}".encode()),
        ],
    }
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    asgi = logging.getLogger("uvicorn.asgi")
    asgi.addHandler(handler)
    try:
        asgi.error("%s [%d] Started scope=%s", "ASGI", 1, scope)
    finally:
        asgi.removeHandler(handler)
    (record,) = records
    message = record.getMessage()
    assert JWT not in message and "c-123" not in message, message
