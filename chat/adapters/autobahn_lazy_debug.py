"""Stop autobahn from colouring debug text that nobody logs, on every frame sent and received.

autobahn's ``sendData`` (each frame written) and ``dataReceived`` (each read) pass
``hltype(method)`` and ``hlval(value)`` to ``log.debug``. Python evaluates those arguments
before txaio's disabled ``debug`` throws them away: each call inspects the method's qualified
name and, when ``click`` is installed (uvicorn brings it), styles it with ANSI colours. That
was 11 % of the server's CPU in the benchmark's handshake scenario (docs/performance.md),
paid once per receiver for every broadcast.

Here those two modules get versions that only remember their argument and render the same text
when a debug line is really formatted. tests/test_autobahn_lazy_debug.py checks both.
"""

from __future__ import annotations

# The autobahn modules whose hot paths (frame send and receive) build debug text eagerly.
HOT_MODULES = ("autobahn.websocket.protocol", "autobahn.twisted.websocket")


class DeferredText:
    """Text that is rendered only when a log line is formatted (``str`` or ``format``)."""

    __slots__ = ("args", "kwargs", "render")

    def __init__(self, render, args, kwargs) -> None:
        self.render = render
        self.args = args
        self.kwargs = kwargs

    def __str__(self) -> str:
        return self.render(*self.args, **self.kwargs)

    __repr__ = __str__


def defer_autobahn_debug_formatting() -> None:
    import importlib

    try:
        from autobahn import util
    except ImportError:  # no daphne, so no autobahn
        return
    for module_name in HOT_MODULES:
        module = importlib.import_module(module_name)
        if getattr(module, "_chat_lazy_debug", False):
            continue
        module.hltype = lambda *args, **kwargs: DeferredText(util.hltype, args, kwargs)
        module.hlval = lambda *args, **kwargs: DeferredText(util.hlval, args, kwargs)
        module._chat_lazy_debug = True
