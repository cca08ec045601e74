"""ORM queries compiled once per shape, then run with each call's values.

A history page is read on every history request and every reconnect. Building and compiling
its queryset cost about 1.3 ms of CPU per page, four times the cost of running it
(docs/performance.md, item 21). The SQL depends only on the page's shape (which of
`before`/`after`, the page size, the database), so the queryset is built once per shape with
stand-in values, compiled, and each call puts its own values where the stand-ins were. The
ORM queryset stays the one definition of the query.

Compiled queries are kept per thread: a compiler belongs to its thread's connection (the
converters it found are that connection's).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass

from django.db import connections
from django.db.models import QuerySet

_compiled = threading.local()


@dataclass(frozen=True, slots=True)
class _Slot:
    """A parameter of the compiled SQL: a constant, or where a named value goes."""

    constant: object = None
    name: str | None = None
    adapt: Callable[[object], object] | None = None


class CompiledQuery:
    """A values_list() queryset's SQL, with the stand-ins of `stand_ins` as named slots."""

    def __init__(self, queryset: QuerySet, stand_ins: Mapping[str, object]) -> None:
        self.using = queryset.db
        compiler = queryset.query.get_compiler(using=self.using)
        self.sql, params = compiler.as_sql()
        self.slots = [_slot(param, stand_ins) for param in params]
        missing = set(stand_ins) - {slot.name for slot in self.slots}
        if missing:
            # The ORM wrote such a value into the SQL itself: it cannot be replaced per call.
            raise ValueError(f"stand-ins not found among the query's parameters: {missing}")
        columns = [expression for expression, _, _ in compiler.select]
        self.converters = list(compiler.get_converters(columns).items())

    def rows(self, **values) -> list[tuple]:
        """The rows for `values` (one per stand-in), converted as the ORM converts them."""
        params = [
            slot.constant if slot.name is None else slot.adapt(values[slot.name])
            for slot in self.slots
        ]
        connection = connections[self.using]
        with connection.cursor() as cursor:
            cursor.execute(self.sql, params)
            rows = cursor.fetchall()
        if not self.converters:
            return rows
        return [self._converted(row, connection) for row in rows]

    def _converted(self, row: tuple, connection) -> tuple:
        row = list(row)
        for position, (functions, expression) in self.converters:
            value = row[position]
            for convert in functions:
                value = convert(value, expression, connection)
            row[position] = value
        return tuple(row)


def compiled(shape: Hashable, build: Callable[[], QuerySet], stand_ins: Mapping[str, object]):
    """The CompiledQuery of `shape` on this thread, built (once) from `build()`."""
    queries = getattr(_compiled, "queries", None)
    if queries is None:
        queries = _compiled.queries = {}
    query = queries.get(shape)
    if query is None:
        query = queries[shape] = CompiledQuery(build(), stand_ins)
    return query


def _slot(param: object, stand_ins: Mapping[str, object]) -> _Slot:
    """Which stand-in `param` is, and how the ORM turned it into a parameter, if it is one."""
    for name, stand_in in stand_ins.items():
        if isinstance(stand_in, uuid.UUID):
            # Native on PostgreSQL; 32 hex digits on SQLite.
            if param == stand_in:
                return _Slot(name=name, adapt=_as_uuid)
            if param == stand_in.hex:
                return _Slot(name=name, adapt=lambda value: _as_uuid(value).hex)
        elif type(param) is type(stand_in) and param == stand_in:
            return _Slot(name=name, adapt=type(stand_in))
    return _Slot(constant=param)


def _as_uuid(value) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
