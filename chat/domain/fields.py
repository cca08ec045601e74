"""A text column that stores any Python string byte-exact, NUL included, on every database."""

from __future__ import annotations

import json

from django.db import models

# PostgreSQL text cannot hold NUL ("\x00"). Such a value (and, to stay unambiguous, any value
# that happens to start with the marker) is stored as marker + its JSON form, which escapes
# NUL as \u0000; every other value is stored as it is, so the column stays readable and
# searchable. SQLite stores NUL natively and needs none of this.
MARKER = "\x01json:"


class NulSafeTextField(models.TextField):
    def get_db_prep_value(self, value, connection, prepared=False):
        value = super().get_db_prep_value(value, connection, prepared)
        if (
            connection.vendor == "postgresql"
            and isinstance(value, str)
            and ("\x00" in value or value.startswith(MARKER))
        ):
            return MARKER + json.dumps(value)
        return value

    def from_db_value(self, value, expression, connection):
        if (
            connection.vendor == "postgresql"
            and isinstance(value, str)
            and value.startswith(MARKER)
        ):
            return json.loads(value[len(MARKER) :])
        return value
