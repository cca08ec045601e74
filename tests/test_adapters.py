"""chat.adapters: installed only on the library versions they were written for."""

import logging
import re
from pathlib import Path

import pytest

from chat import adapters

PINS = dict(
    re.findall(
        r"^([A-Za-z][\w.-]*)(?:\[[\w,]+\])?==([\w.]+)",
        Path("requirements.txt").read_text(),
        flags=re.M,
    )
)


@pytest.mark.parametrize("name", list(adapters.WRITTEN_FOR))
def test_every_adapter_is_written_for_the_pinned_versions(name):
    """An upgrade in requirements.txt must come with the adapter re-checked (and re-measured)."""
    for distribution, version in adapters.WRITTEN_FOR[name].items():
        assert PINS.get(distribution) == version, f"{name}: {distribution} is pinned differently"
    assert adapters.version_mismatches(name) == []


def test_an_adapter_on_another_library_version_is_not_installed_and_says_why(monkeypatch, caplog):
    monkeypatch.setattr(adapters, "_enabled", set())
    monkeypatch.setitem(adapters.WRITTEN_FOR, "broadcast_frames", {"autobahn": "0.0.1"})

    with caplog.at_level(logging.WARNING, logger="chat.adapters"):
        installed = adapters.install()

    assert "broadcast_frames" not in installed and not adapters.enabled("broadcast_frames")
    assert "backpressure" in installed
    assert "adapter broadcast_frames not installed: autobahn 26.10.2, not 0.0.1" in caplog.text


def test_chat_adapters_off_leaves_an_adapter_out(monkeypatch, settings):
    monkeypatch.setattr(adapters, "_enabled", set())
    settings.CHAT_ADAPTERS_OFF = ["request_threads"]

    installed = adapters.install()

    assert "request_threads" not in installed
    assert installed == set(adapters.WRITTEN_FOR) - {"request_threads"}


def test_chat_adapters_off_with_an_unknown_name_says_so(monkeypatch, settings, caplog):
    """A typo (or an adapter since removed) must not pass for an A/B with the adapter off."""
    monkeypatch.setattr(adapters, "_enabled", set())
    settings.CHAT_ADAPTERS_OFF = ["autobahn_lazy_debug"]

    with caplog.at_level(logging.WARNING, logger="chat.adapters"):
        installed = adapters.install()

    assert installed == set(adapters.WRITTEN_FOR)
    assert "CHAT_ADAPTERS_OFF names no adapter: autobahn_lazy_debug" in caplog.text
