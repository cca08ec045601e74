"""Every line that reaches into another library's private parts, installed by one call.

Each adapter was written for, and measured on, exact versions of the libraries it touches
(requirements.txt pins them). `install()` checks those versions: on any other version the
adapter is not installed, a warning says so, and the library's own path is used, so an upgrade
costs speed, never correctness. docs/performance.md ("Adapters") lists what each touches, what
it saves, the upstream issue and when it can go. CHAT_ADAPTERS_OFF switches adapters off by
name (for A/B measurements, or when one misbehaves).

| adapter               | touches                                   | used by                 |
|-----------------------|-------------------------------------------|-------------------------|
| daphne_close_codes    | daphne's serverClose, autobahn's close    | wiring (asgi.py)        |
| daphne_shared_options | daphne/autobahn per-socket option copies  | wiring                  |
| request_threads       | Django's ASGIHandler internals            | wiring (HTTP)           |
| broadcast_frames      | daphne's send -> autobahn protocol        | realtime consumers      |
| backpressure          | daphne's send -> Twisted transport buffer | realtime consumers      |
| access_log            | daphne's access log writer (redaction)    | wiring                  |
"""

from __future__ import annotations

import logging
from importlib import metadata

from django.conf import settings

logger = logging.getLogger(__name__)

WRITTEN_FOR: dict[str, dict[str, str]] = {
    "daphne_close_codes": {"daphne": "4.2.3", "autobahn": "26.10.2"},
    "daphne_shared_options": {"daphne": "4.2.3", "autobahn": "26.10.2"},
    "request_threads": {"Django": "5.2.19", "asgiref": "3.13.0"},
    "broadcast_frames": {"daphne": "4.2.3", "autobahn": "26.10.2"},
    "backpressure": {"daphne": "4.2.3", "Twisted": "26.10.0"},
    "access_log": {"daphne": "4.2.3"},
}

_enabled: set[str] = set()


def version_mismatches(name: str) -> list[str]:
    """What differs from the versions `name` was written for ("daphne 4.3.0, not 4.2.3")."""
    found = []
    for distribution, wanted in WRITTEN_FOR[name].items():
        try:
            installed = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            installed = "absent"
        if installed != wanted:
            found.append(f"{distribution} {installed}, not {wanted}")
    return found


def install() -> set[str]:
    """Install every adapter its libraries' versions allow; returns the names installed."""
    from chat.adapters import access_log, daphne_close_codes, daphne_shared_options

    patches = {
        "access_log": access_log.redact_access_log,
        "daphne_close_codes": daphne_close_codes.allow_protocol_close_codes,
        "daphne_shared_options": daphne_shared_options.share_protocol_options,
    }
    switched_off = set(settings.CHAT_ADAPTERS_OFF)
    for unknown in sorted(switched_off - set(WRITTEN_FOR)):
        logger.warning(
            "CHAT_ADAPTERS_OFF names no adapter: %s (known: %s)", unknown, ", ".join(WRITTEN_FOR)
        )
    for name in WRITTEN_FOR:
        mismatches = version_mismatches(name)
        if name == "access_log" and (name in switched_off or mismatches):
            access_log.redact_access_log_stream()  # daphne's own lines, never a credential
        if name in switched_off:
            logger.info("adapter %s switched off (CHAT_ADAPTERS_OFF)", name)
        elif mismatches:
            logger.warning(
                "adapter %s not installed: %s; the library's own path is used",
                name,
                "; ".join(mismatches),
            )
        else:
            if name in patches:
                patches[name]()
            _enabled.add(name)
    return set(_enabled)


def enabled(name: str) -> bool:
    """Whether adapter `name` was installed (after install(); tests install it too)."""
    return name in _enabled
