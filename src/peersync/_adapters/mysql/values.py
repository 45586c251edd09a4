"""Values between MariaDB's driver types and the canonical forms that travel
(``_engine/types.py``): converted when sent and when applied.

A value a column cannot hold (a float NaN, a malformed date, a value a
strict session refuses) raises :class:`Unfit`; the apply records the row as
an ``error`` conflict naming the column, never storing a changed value.
"""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import math
import struct
import uuid
from collections.abc import Callable
from typing import Any

from peersync._engine.model import RawText, Value
from peersync._engine.types import Column, ValueType


class Unfit(ValueError):
    """A value that the destination column cannot hold exactly."""


def _time(v: dt.timedelta) -> str:
    total = v.days * 86400 + v.seconds
    sign = "-" if total < 0 else ""
    total = abs(total)
    text = f"{sign}{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"
    return text + (f".{v.microseconds:06d}" if v.microseconds else "")


def _stamp(v: dt.datetime) -> str:
    return v.isoformat(" ", timespec="microseconds" if v.microsecond else "seconds")


def to_wire(spec: Column) -> Callable[[Any], Value]:
    """The function turning this column's driver values into canonical ones."""
    t = spec.type
    if t is ValueType.DECIMAL:
        return lambda v: None if v is None else (format(v, "f") if isinstance(v, decimal.Decimal) else str(v))
    if t is ValueType.TIME:
        return lambda v: None if v is None else _time(v) if isinstance(v, dt.timedelta) else str(v)
    if t is ValueType.TIMESTAMP:
        return lambda v: None if v is None else _stamp(v) if isinstance(v, dt.datetime) else str(v)
    if t is ValueType.TIMESTAMPTZ:
        # The session's zone is UTC: the driver's naive datetime is the instant in UTC.
        return lambda v: None if v is None else _stamp(v) + "+00:00" if isinstance(v, dt.datetime) else str(v)
    if t is ValueType.DATE:
        return lambda v: None if v is None else v.isoformat() if isinstance(v, dt.date) else str(v)
    if t is ValueType.BOOLEAN:
        return lambda v: None if v is None else int(v)
    if t is ValueType.BYTES:
        return lambda v: None if v is None else bytes(v)
    if t is ValueType.UUID:
        return lambda v: None if v is None else str(v).lower()
    return lambda v: v


def _from_timestamptz(v: str) -> str:
    try:
        when = dt.datetime.fromisoformat(v)
    except ValueError:
        raise Unfit(f"not a timestamp: {v!r}") from None
    if when.tzinfo is not None:
        when = when.astimezone(dt.UTC).replace(tzinfo=None)
    return _stamp(when)


def from_wire(spec: Column) -> Callable[[Value], Any]:
    """The function turning a canonical value into a driver parameter for this column."""
    t = spec.type

    def check(v: Value) -> Value:
        if isinstance(v, RawText):
            raise Unfit("text that is not UTF-8")
        return v

    def finite(v: Value, where: str = "") -> Value:
        v = check(v)
        if isinstance(v, float) and not math.isfinite(v):
            raise Unfit(f"MariaDB cannot store {v!r}{where}")
        if isinstance(v, float) and v == 0 and math.copysign(1, v) < 0:
            raise Unfit(f"MariaDB cannot store -0.0{where} (it keeps 0.0)")
        return v

    if t is ValueType.REAL and (spec.declared or "").lower().startswith("float"):

        def single(v: Value) -> Value:
            v = finite(v)
            if isinstance(v, float):
                try:
                    narrow = struct.unpack("f", struct.pack("f", v))[0]
                except OverflowError:
                    narrow = math.inf
                if math.isinf(narrow):
                    raise Unfit(f"{v!r} is out of range for {spec.declared}")
                if narrow != v:
                    raise Unfit(f"{v!r} would lose precision in {spec.declared}")
            return v

        return single
    if t is ValueType.REAL:
        return finite
    if t is ValueType.TIMESTAMPTZ:
        return lambda v: _from_timestamptz(v) if isinstance(v, str) else check(v)
    if t is ValueType.UUID:

        def uid(v: Value) -> Any:
            if isinstance(v, bytes) and len(v) == 16:
                return str(uuid.UUID(bytes=v))
            return check(v)

        return uid
    if t is ValueType.DECIMAL:

        def dec(v: Value) -> Any:
            v = finite(v, " in a DECIMAL")
            if isinstance(v, float):  # SQLite's affinity makes decimal text a REAL: judged by its digits
                v = repr(v)
            if isinstance(v, str):
                try:
                    d = decimal.Decimal(v)
                except decimal.InvalidOperation:
                    raise Unfit(f"not a decimal number: {v!r}") from None
                if not d.is_finite():
                    raise Unfit(f"MariaDB cannot store {v!r} in a DECIMAL")
                # MariaDB rounds extra fractional digits with only a note, even when strict.
                exp = d.as_tuple().exponent
                if spec.scale is not None and isinstance(exp, int) and -exp > spec.scale and d != round(d, spec.scale):
                    raise Unfit(f"{v} has more than {spec.scale} decimal places")
                return d
            return v

        return dec
    return check


@functools.lru_cache(maxsize=256)
def converters(
    specs: tuple[Column, ...],
) -> tuple[tuple[Callable[[Any], Value], ...], tuple[Callable[[Value], Any], ...]]:
    """Each column's :func:`to_wire` and :func:`from_wire`, made once per
    table shape (an apply asks for them for every row)."""
    return tuple(to_wire(s) for s in specs), tuple(from_wire(s) for s in specs)
