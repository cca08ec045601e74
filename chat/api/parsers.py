"""REST's JSON parser: DRF's, with chat.json_input's bounds (REST_FRAMEWORK's
DEFAULT_PARSER_CLASSES), so a hostile body is a 400, never a RecursionError and a 500."""

from __future__ import annotations

import codecs

from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.utils.json import strict_constant

from chat import json_input


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = parsers.get_encoding(parser_context or {})
        try:
            text = codecs.getreader(encoding)(stream).read()
            parse_constant = strict_constant if self.strict else None
            return json_input.loads(text, parse_constant=parse_constant)
        except json_input.JSONInputError as error:
            raise ParseError(f"JSON parse error - {error.detail}") from None
        except ValueError as error:  # the body is not text in its declared encoding
            raise ParseError(f"JSON parse error - {error}") from None
