"""Incoming values in the engine's canonical forms, made ready for PostgreSQL.

Each column binds as one of a few plain parameter types (``bind_type``) and
is cast to its column's type in SQL. A value the column cannot hold exactly
is refused here, before any write, with a message naming the column and the
reason: PostgreSQL itself would round a ``numeric(p, s)`` value, a
``float4`` or a time with fewer fractional digits without a word, and
drop the trailing spaces of a ``char(n)`` value; a text too long for its
``varchar(n)`` and an integer out of its column's range are caught here
too, so the message names the column. What only PostgreSQL can judge (a
date that does not exist, an unknown enum label, a CHECK constraint) fails
the write, and the apply isolates that row. Either way the row becomes an ``error``
conflict and the rest of the batch applies.
"""

from __future__ import annotations

import decimal
import math
import re
import struct
import uuid
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import psycopg

from peersync._engine.model import RawText, Value
from peersync._engine.types import ValueType

from .schema import PgColumn, Tracked

_FRACTION = re.compile(r"[0-9]:[0-9]{2}:[0-9]{2}\.([0-9]+)")
_DATE = re.compile(r"-?[0-9]{4,}-[0-9]{2}-[0-9]{2}( BC)?|-?infinity")
_TIMESTAMP = re.compile(r"[0-9]{4,}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?( BC)?|-?infinity")

_INT_BITS = {"int2": 16, "int4": 32, "int8": 64}

BindValue = int | float | str | bytes | bool | None


class Unfit(Exception):
    """A value its destination column cannot hold exactly; the message says why."""


def bind_type(col: PgColumn) -> str:
    """The PostgreSQL type a column's values are bound as (as an array element)."""
    t = col.spec.type
    if t is ValueType.INTEGER:
        return "int8"
    if t is ValueType.REAL:
        return "float8"
    if t is ValueType.BYTES:
        return "bytea"
    if t is ValueType.BOOLEAN:
        return "bool"
    return "text"


def _what(v: Value) -> str:
    return "non-UTF-8 text" if isinstance(v, RawText) else type(v).__name__


def to_pg(col: PgColumn, v: Value) -> BindValue:
    """``v`` as the column binds it; raises :class:`Unfit`."""
    if v is None:
        return None
    spec, t = col.spec, col.spec.type
    name = spec.name
    if t is ValueType.INTEGER:
        if type(v) is not int:
            raise Unfit(f"column {name}: expected an integer, got {_what(v)} {v!r}")
        bits = _INT_BITS.get(col.typname, 64)
        if not -(2 ** (bits - 1)) <= v < 2 ** (bits - 1):
            raise Unfit(f"column {name}: {v} is out of range for {spec.declared}")
        return v
    if t is ValueType.REAL:
        if type(v) is int and float(v) == v:
            v = float(v)
        if type(v) is not float:
            raise Unfit(f"column {name}: expected a number, got {_what(v)}")
        if col.typname == "float4" and math.isfinite(v):
            try:
                narrow = struct.unpack("f", struct.pack("f", v))[0]
            except OverflowError:
                raise Unfit(f"column {name}: {v!r} is out of range for {spec.declared}") from None
            if narrow != v:
                raise Unfit(f"column {name}: {v!r} would lose precision in {spec.declared}")
        return v
    if t is ValueType.DECIMAL:
        return _decimal(col, v)
    if t is ValueType.BOOLEAN:
        if type(v) is int and v in (0, 1):
            return bool(v)
        raise Unfit(f"column {name}: expected a boolean (0 or 1), got {v!r}")
    if t is ValueType.BYTES:
        if type(v) is bytes:
            return v
        raise Unfit(f"column {name}: expected bytes, got {_what(v)}")
    if t is ValueType.UUID:
        if type(v) is bytes and len(v) == 16:
            return str(uuid.UUID(bytes=v))
        if type(v) is str:
            try:
                return str(uuid.UUID(v))
            except ValueError:
                pass
        raise Unfit(f"column {name}: {v!r} is not a UUID")
    if type(v) is not str:
        raise Unfit(f"column {name}: expected text, got {_what(v)}")
    if spec.length is not None and t is ValueType.TEXT and len(v) > spec.length:
        raise Unfit(f"column {name}: a text of {len(v)} characters is too long for {spec.declared}")
    if col.typname == "bpchar" and v.endswith(" "):
        # char(n) pads with spaces and reads back without them: such a value would not come back.
        raise Unfit(f"column {name}: {spec.declared} cannot keep the trailing spaces of {v!r}")
    if "\x00" in v:
        raise Unfit(f"column {name}: PostgreSQL text cannot hold a NUL character")
    if t is ValueType.DATE and not _DATE.fullmatch(v):
        raise Unfit(f"column {name}: {v!r} is not a date (YYYY-MM-DD)")
    if t is ValueType.TIMESTAMP and not _TIMESTAMP.fullmatch(v):
        # A zone offset would be dropped without a word by timestamp without time zone.
        raise Unfit(f"column {name}: {v!r} is not a timestamp without time zone (YYYY-MM-DD HH:MM:SS)")
    if t in (ValueType.TIME, ValueType.TIMESTAMP, ValueType.TIMESTAMPTZ) and spec.precision is not None:
        m = _FRACTION.search(v)
        if m and len(m.group(1).rstrip("0")) > spec.precision:
            raise Unfit(f"column {name}: {v!r} has more fractional digits than {spec.declared} keeps")
    return v


def converter(col: PgColumn) -> Callable[[Value], BindValue]:
    """:func:`to_pg` for one column, with the common values of the plainest
    types (an integer in range, a float, a text with no limit) passed
    through without the general checks; anything else takes them."""
    t, slow = col.spec.type, partial(to_pg, col)
    if t is ValueType.INTEGER:
        bits = _INT_BITS.get(col.typname, 64)
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1)
        return lambda v: v if type(v) is int and lo <= v < hi else slow(v)
    if t is ValueType.REAL and col.typname != "float4":
        return lambda v: v if type(v) is float else slow(v)
    if t is ValueType.TEXT and col.spec.length is None and col.typname != "bpchar":
        return lambda v: v if type(v) is str and "\x00" not in v else slow(v)
    return slow


def _decimal(col: PgColumn, v: Value) -> str:
    spec = col.spec
    if type(v) is int:
        text = str(v)
    elif type(v) is float:
        text = "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity") if math.isinf(v) else repr(v)
    elif type(v) is str:
        text = v.strip()
    else:
        raise Unfit(f"column {spec.name}: expected a decimal number, got {_what(v)}")
    try:
        d = decimal.Decimal(text)
    except decimal.InvalidOperation:
        raise Unfit(f"column {spec.name}: {v!r} is not a decimal number") from None
    if not d.is_finite():
        if spec.precision is not None and not d.is_nan():
            raise Unfit(f"column {spec.name}: {text} is out of range for {spec.declared}")
        return text
    if "e" in text.lower():
        text = format(d, "f")
    if spec.precision is not None:
        scale = spec.scale or 0
        _, digits, exp = d.normalize().as_tuple()
        assert isinstance(exp, int)
        if -exp > scale and d != 0:
            raise Unfit(f"column {spec.name}: {text} has more decimal places than {spec.declared} keeps")
        whole = len(digits) + exp if d != 0 else 0
        if whole > spec.precision - scale:
            raise Unfit(f"column {spec.name}: {text} is out of range for {spec.declared}")
    return text


def blame(conn: Any, t: Tracked, bound: Sequence[BindValue], msg: str) -> str:
    """``msg`` (PostgreSQL's refusal of one row) with the column whose value
    it refused (an enum label, a value only PostgreSQL's input function
    judges), found by casting each such value alone; ``msg`` itself when
    none fails alone (a constraint). Runs only on a failing row."""
    for i, col in enumerate(t.columns):
        if bound[i] is None or bind_type(col) != "text" or col.cast == "text":
            continue
        try:
            with conn.transaction():  # a savepoint
                conn.execute(f"SELECT %s::{col.cast}", [bound[i]])
        except psycopg.DataError:  # the value itself is refused
            return f"column {col.spec.name}: {msg}"
    return msg


def bound_param(t: Tracked, i: int, ref: str) -> str:
    """A bound value of column ``i`` as its column's type, in SQL."""
    col = t.columns[i]
    return f"{ref}::{col.cast}" if bind_type(col) == "text" and col.cast != "text" else ref
