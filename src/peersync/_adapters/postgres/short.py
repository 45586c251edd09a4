"""An initial sync's rows in the short wire form, checked and made into
``COPY`` text a column at a time.

Every row an initial sync sends from the replica that made it travels in the
short form (``[tick_offset, time_offset, *values]``, see
:mod:`peersync._engine.wire`): a live row whose version and creation are the
source's own tick. When a table's rows in a batch all have that form, this
module checks them as :func:`~peersync._engine.wire.decode_batch` and the
apply's converters (``values.converter``) would, but column by column with
builtins (``map``, ``set``, ``min``, ``max``, ``str.join``) instead of a
Python object and a converter call per value, and writes the rows' ``COPY``
text the same way. The checks are conservative: anything unusual (a row of
the full form, a value of an unexpected type, an integer out of its
column's range, a text with a NUL) gives None, and the batch takes the
general path, which decodes it row by row and raises or refuses exactly as
before. So this module decides nothing the general path would decide
otherwise; it only does the common case's work faster.

The text is PostgreSQL's text ``COPY`` format: fields separated by tabs,
``\\N`` for NULL, a backslash, tab, newline, carriage return, backspace, form
feed or vertical tab escaped (as psycopg's ``write_row`` does), each value
in the form its column's input function reads: an integer in decimal, a
float by ``repr`` (``inf``, ``-inf`` and ``nan`` included, which ``float8``
reads), ``t``/``f``, ``\\x`` and hex for bytes.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from peersync._engine.knowledge import Knowledge, Version
from peersync._engine.model import Change, Value
from peersync._engine.types import ValueType

from .schema import PgColumn, Tracked
from .values import Unfit, converter

NULL = "\\N"
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\b": "\\b", "\f": "\\f", "\v": "\\v"})
_SPECIAL = tuple(chr(c) for c in (92, 9, 10, 13, 8, 12, 11))  # the characters _ESCAPES rewrites
_INT_BITS = {"int2": 16, "int4": 32, "int8": 64}
_I64 = (-(2**63), 2**63 - 1)
_NONE = type(None)


@dataclass(frozen=True)
class ShortRows:
    """A table's rows of one batch, all in the short form and fit for their
    columns. ``ticks``: each row's source tick (its version's), ascending;
    ``times``: change times; ``columns``: each column's values as received;
    ``fields``: each column's ``COPY`` text fields."""

    source: bytes
    ticks: list[int]
    times: list[int]
    columns: Sequence[Sequence[Value]]
    fields: list[list[str]]
    key_positions: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.ticks)

    def unknown_to(self, known: Knowledge) -> bool:
        """Does ``known`` hold none of these rows' versions?"""
        lo, hi = self.ticks[0], self.ticks[-1]
        return all(last < lo or first > hi for first, last in known.ranges(self.source))

    def user_text(self) -> str:
        """The rows as ``COPY`` text, the table's columns in order."""
        return "\n".join(map("\t".join, zip(*self.fields, strict=True))) + "\n"

    def tracking_text(self, local: Sequence[str], tail: str) -> str:
        """Tracking rows as ``COPY`` text of columns ``k0.., utick, ctime, lt``
        and then whatever ``tail`` holds (the same for every row, its fields
        each after a tab); ``local``: each row's new local tick, as text."""
        keys = [self.fields[p] for p in self.key_positions]
        lines = map("\t".join, zip(*keys, map(str, self.ticks), map(str, self.times), local, strict=True))
        end = tail + "\n"
        return end.join(lines) + end

    def changes(self) -> list[Change]:
        """The rows as :func:`~peersync._engine.wire.decode_batch` gives them."""
        s, rows = self.source, zip(*self.columns, strict=True)
        return [(t, False, (s, t), (s, t), w, v) for t, w, v in zip(self.ticks, self.times, rows, strict=True)]

    def settled(self, tid: int, made_with: Knowledge) -> Iterator[tuple[int, tuple[Value, ...], Version, Knowledge]]:
        """The rows as ``pending.release`` takes them once written (table id ``tid``)."""
        keys = zip(*(self.columns[p] for p in self.key_positions), strict=True)
        s = self.source
        return ((tid, k, (s, t), made_with) for k, t in zip(keys, self.ticks, strict=True))


def parse(t: Tracked, source: bytes, first: int, last: int, base_time: int, rows: list[Any]) -> ShortRows | None:
    """``rows`` (one table's, as msgpack decoded them, of a batch covering
    source ticks ``first..last``) as :class:`ShortRows`, or None unless every
    row is in the short form, well formed, and every value fits its column."""
    ncols = len(t.columns)
    if not rows or set(map(type, rows)) != {list} or set(map(len, rows)) != {ncols + 2}:
        return None
    cols = list(zip(*rows, strict=True))
    offsets, dtimes = cols[0], cols[1]
    if set(map(type, offsets)) != {int} or set(map(type, dtimes)) != {int}:
        return None
    if offsets[0] < 1 or offsets[-1] > last - first + 1 or not all(map(operator.lt, offsets, offsets[1:])):
        return None
    times = list(map(base_time.__add__, dtimes))
    if min(times) < _I64[0] or max(times) > _I64[1]:
        return None
    kpos = t.schema.key_positions
    fields: list[list[str]] = []
    for i, col in enumerate(t.columns):
        got = _column(col, cols[i + 2], i in kpos)
        if got is None:
            return None
        fields.append(got)
    ticks = list(map((first - 1).__add__, offsets))
    return ShortRows(source, ticks, times, cols[2:], fields, kpos)


def _column(col: PgColumn, values: Sequence[Value], key: bool) -> list[str] | None:
    """The ``COPY`` fields of one column's values, or None if one of them
    does not fit it (or is not of a wire type: the general path says which)."""
    types = set(map(type, values))
    nulls = _NONE in types
    if nulls and key:
        return None
    kinds = types - {_NONE}
    present = [v for v in values if v is not None] if nulls else values
    spec = col.spec
    if spec.type is ValueType.INTEGER and col.typname in _INT_BITS and kinds <= {int}:
        bits = _INT_BITS[col.typname]
        if present and (min(present) < -(2 ** (bits - 1)) or max(present) >= 2 ** (bits - 1)):
            return None
        return _fields(values, nulls, str)
    if spec.type is ValueType.REAL and col.typname == "float8" and kinds <= {float}:
        return _fields(values, nulls, repr)
    if spec.type is ValueType.TEXT and spec.length is None and col.typname != "bpchar" and kinds <= {str}:
        joined = "".join(present)
        if "\x00" in joined:
            return None
        if any(c in joined for c in _SPECIAL):
            return _fields(values, nulls, _escape)
        return [NULL if v is None else v for v in values] if nulls else list(values)
    if not kinds <= {int, float, str, bytes}:  # bool, RawText, anything else: the general path
        return None
    try:
        bound = list(map(converter(col), values))
    except Unfit:
        return None
    return [_text(v) for v in bound]


def _fields(values: Sequence[Value], nulls: bool, fmt: Callable[[Any], str]) -> list[str]:
    if not nulls:
        return list(map(fmt, values))
    return [NULL if v is None else fmt(v) for v in values]


def _escape(v: str) -> str:
    return v.translate(_ESCAPES)


def _text(v: object) -> str:
    """A bound value (see ``values.to_pg``) as a ``COPY`` text field."""
    if v is None:
        return NULL
    if type(v) is bool:
        return "t" if v else "f"
    if type(v) is bytes:
        return "\\\\x" + v.hex()
    if type(v) is str:
        return _escape(v)
    return repr(v) if type(v) is float else str(v)
