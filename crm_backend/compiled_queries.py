"""ORM queries compiled once per shape, then run with each call's values.

A history page is read on every history request and every reconnect, and every REST request
reads its token's user. Building and compiling such a queryset cost more CPU than running it
(a page: 1.3 ms against 0.4; docs/performance.md, items 21-22). The SQL depends only on the
query's shape (for a page: which of `before`/`after`, the page size, the database), so the
queryset is built once per shape with stand-in values, compiled, and each call puts its own
values where the stand-ins were. The ORM queryset stays the one definition of the query.

It is built and compiled twice, with two different stand-ins for each value: the SQL must be
the same, and only the parameters that differ between the two are the call's values, so a
constant of the query is never taken for one. Compiled queries are kept per thread (a
compiler's converters belong to its thread's connection), at most MAX_SHAPES per thread.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass

from django.db import connections
from django.db.models import QuerySet

MAX_SHAPES = 128  # per thread; page sizes are the client's choice, so shapes are too

_compiled = threading.local()


@dataclass(frozen=True, slots=True)
class _Slot:
    """A parameter of the compiled SQL: a constant, or where a named value goes."""

    constant: object = None
    name: str | None = None
    adapt: Callable[[object], object] | None = None


class CompiledQuery:
    """A values_list() queryset's SQL, with named slots for the values that vary.

    `build(values)` returns the queryset for `values` (a name → value mapping); `stand_ins`
    gives two different stand-ins for each name.
    """

    def __init__(
        self,
        build: Callable[[Mapping[str, object]], QuerySet],
        stand_ins: Mapping[str, tuple[object, object]],
    ) -> None:
        queryset = build({name: pair[0] for name, pair in stand_ins.items()})
        self.using = queryset.db
        compiler = queryset.query.get_compiler(using=self.using)
        self.sql, params = compiler.as_sql()
        other = build({name: pair[1] for name, pair in stand_ins.items()})
        other_sql, other_params = other.query.get_compiler(using=self.using).as_sql()
        if other_sql != self.sql or len(other_params) != len(params):
            # The ORM wrote a value into the SQL itself: it cannot be replaced per call.
            raise ValueError("the query's SQL changes with its values")
        self.slots = [
            _slot(param, other_param, stand_ins)
            for param, other_param in zip(params, other_params, strict=True)
        ]
        missing = set(stand_ins) - {slot.name for slot in self.slots}
        if missing:
            raise ValueError(f"values not found among the query's parameters: {missing}")
        columns = [expression for expression, _, _ in compiler.select]
        self.converters = compiler.get_converters(columns)
        self._compiler = compiler  # its connection is this thread's (the cache's key says so)

    def rows(self, **values) -> list[tuple]:
        """The rows for `values` (one per name), converted as the ORM converts them."""
        params = [
            slot.constant if slot.name is None else slot.adapt(values[slot.name])
            for slot in self.slots
        ]
        with connections[self.using].cursor() as cursor:
            cursor.execute(self.sql, params)
            rows = cursor.fetchall()
        if not self.converters:
            return rows
        return [tuple(row) for row in self._compiler.apply_converters(rows, self.converters)]


def compiled(
    shape: Hashable,
    build: Callable[[Mapping[str, object]], QuerySet],
    stand_ins: Mapping[str, tuple[object, object]],
    *,
    using: str,
) -> CompiledQuery:
    """The CompiledQuery of `shape` for database `using` on this thread, compiled on first
    use. `build` and `stand_ins` as for CompiledQuery; `build`'s querysets must use `using`."""
    queries = getattr(_compiled, "queries", None)
    if queries is None:
        queries = _compiled.queries = {}
    # This thread's connection object is part of the key: tests may replace it.
    key = (shape, using, id(connections[using]))
    query = queries.get(key)
    if query is None:
        if len(queries) >= MAX_SHAPES:
            del queries[next(iter(queries))]  # the oldest
        query = queries[key] = CompiledQuery(build, stand_ins)
    return query


def _slot(param: object, other: object, stand_ins: Mapping[str, tuple[object, object]]) -> _Slot:
    """A constant when both compilations have the same parameter; otherwise the value whose
    stand-ins these are, and how the ORM turned it into a parameter."""
    if param == other and type(param) is type(other):
        return _Slot(constant=param)
    for name, (first, second) in stand_ins.items():
        if isinstance(first, uuid.UUID):
            # Native on PostgreSQL; 32 hex digits on SQLite.
            if (param, other) == (first, second):
                return _Slot(name=name, adapt=_as_uuid)
            if (param, other) == (first.hex, second.hex):
                return _Slot(name=name, adapt=lambda value: _as_uuid(value).hex)
        elif _is_int(param) and (param, other) == (first, second):
            # psycopg's Int4/Int8 wrappers are ints too; keep the wrapper the ORM chose.
            return _Slot(name=name, adapt=type(param))
    raise ValueError(f"a parameter varies with no value's stand-ins: {param!r}, {other!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _as_uuid(value) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
