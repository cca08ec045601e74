"""JSON from clients, parsed with bounds: the ONE loader of WebSocket frames and REST bodies.

Python's json recurses once per nesting level and raises RecursionError (not ValueError) at
about 1,000 levels, 2 KB of brackets; it also refuses integers of more than 4,300 digits with
a ValueError. Nothing a client sends needs more than a few levels, so deeper input is refused
by counting brackets before the parser runs, and every parser failure is a JSONInputError.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_JSON_DEPTH = 32  # the outermost object or array is level 1

# JSON strings, whose brackets are text; an unterminated one runs to the end of the input.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
# Only brackets are kept, and braces become square brackets: nesting is all that counts
# (mismatched pairs are the parser's to refuse).
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_BRACES_AS_BRACKETS = bytes.maketrans(b"{}", b"[]")


def _nested_at_most(depth: int) -> re.Pattern:
    """Balanced groups nested at most `depth` deep; possessive, so linear time, no backtracking."""
    group = rb"\[\]"
    for _ in range(depth - 1):
        group = rb"\[(?:" + group + rb")*+\]"
    return re.compile(rb"(?:" + group + rb")*+")


_WITHIN_DEPTH = _nested_at_most(MAX_JSON_DEPTH)


class JSONInputError(ValueError):
    """Input the server does not parse; `detail` says why, for the client."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class JSONTooDeep(JSONInputError):
    """Valid JSON, nested deeper than MAX_JSON_DEPTH."""


def loads(text: str, **options: Any) -> Any:
    """json.loads(text, **options), or JSONInputError (JSONTooDeep when nested too deep)."""
    check_nesting(text)
    try:
        return json.loads(text, **options)
    except RecursionError:  # a backstop: check_nesting keeps the parser far from the limit
        raise JSONTooDeep(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as error:
        raise JSONInputError(_parse_error_detail(error)) from None


def check_nesting(text: str) -> None:
    """JSONTooDeep when `text`'s brackets (outside strings) nest deeper than MAX_JSON_DEPTH,
    JSONInputError when they are unbalanced. All in C: about 1 ms for 64 KiB of brackets."""
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return  # usual frames and bodies: counting the brackets is the whole check
    brackets = (
        _STRING.sub("", text)
        .encode("utf-8", "surrogatepass")
        .translate(_BRACES_AS_BRACKETS, _NOT_BRACKETS)
    )
    if _WITHIN_DEPTH.fullmatch(brackets):
        return
    if brackets.count(b"[") != brackets.count(b"]"):
        raise JSONInputError("not valid JSON: unbalanced brackets")
    raise JSONTooDeep(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")


def _parse_error_detail(error: ValueError) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
    # What else json.loads raises: int() past sys.get_int_max_str_digits(), or a ValueError
    # of a hook such as DRF's parse_constant (NaN, Infinity), whose message is written for
    # clients; Python's own messages name interpreter settings, so they are not passed on.
    if "int_max_str_digits" in str(error):
        return "not accepted JSON: a number has too many digits"
    return f"not accepted JSON: {error}"
