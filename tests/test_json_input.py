"""chat.json_input: the bounded loader of frames and REST bodies."""

import pytest

from chat import json_input
from chat.json_input import MAX_JSON_DEPTH, JSONInputError, JSONTooDeep


def nested(depth: int, opener: str = "[", closer: str = "]") -> str:
    return opener * depth + closer * depth


# Texts with more brackets than the limit (below it, counting them is the whole check).
WITHIN_LIMIT = {
    "brackets-in-a-string": '{"a": "' + "[" * 100 + '"}',
    "after-an-escaped-quote": '{"a": "\\"' + "[" * 100 + '"}',
    "many-side-by-side": "[" + "[]," * 1000 + "[]]",
    "at-the-limit": nested(MAX_JSON_DEPTH),
    "at-the-limit-braces-and-brackets": '{"a":' * (MAX_JSON_DEPTH // 2)
    + nested(MAX_JSON_DEPTH // 2)
    + "}" * (MAX_JSON_DEPTH // 2),
    "limit-deep-after-many-shallow": "[" + "[]," * 1000 + nested(MAX_JSON_DEPTH - 1) + "]",
}
TOO_DEEP = {
    "one-more": nested(MAX_JSON_DEPTH + 1),
    "after-an-escaped-backslash": '{"a": "\\\\", "b": ' + nested(MAX_JSON_DEPTH) + "}",
    "alternating-kinds": nested(MAX_JSON_DEPTH // 2 + 1, "{[", "]}").replace("{[]}", "{}"),
    "deep-after-many-shallow": "[" + "[]," * 1000 + nested(MAX_JSON_DEPTH) + "]",
    "deep": nested(30_000),
}


@pytest.mark.parametrize("text", WITHIN_LIMIT.values(), ids=WITHIN_LIMIT.keys())
def test_check_nesting_takes_up_to_the_limit(text):
    json_input.check_nesting(text)


@pytest.mark.parametrize("text", TOO_DEEP.values(), ids=TOO_DEEP.keys())
def test_check_nesting_refuses_deeper(text):
    with pytest.raises(JSONTooDeep):
        json_input.check_nesting(text)


@pytest.mark.parametrize("text", ["[" * 60_000, "[" * 10 + "]" * 9 + "[]" * 30])
def test_check_nesting_of_unbalanced_brackets_is_not_valid_json(text):
    with pytest.raises(JSONInputError, match="unbalanced"):
        json_input.check_nesting(text)


def test_loads_takes_the_limit_and_refuses_one_more():
    assert json_input.loads(nested(MAX_JSON_DEPTH)) is not None
    with pytest.raises(JSONTooDeep):
        json_input.loads(nested(MAX_JSON_DEPTH + 1))


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("{", "not valid JSON: Expecting property name enclosed in double quotes"),
        ("9" * 5000, "not accepted JSON: a number has too many digits"),
        ("[" * 100_000, "not valid JSON: unbalanced brackets"),
        (nested(100), f"JSON nested deeper than {MAX_JSON_DEPTH} levels"),
    ],
)
def test_loads_refusals_say_why_without_python_internals(text, detail):
    with pytest.raises(JSONInputError) as refused:
        json_input.loads(text)
    assert refused.value.detail.startswith(detail)
    assert "sys." not in refused.value.detail
