"""Values MariaDB stores in another form than the one received.

A ``datetime(6)`` keeps ``10:00:00.5`` as ``10:00:00.500000``, a ``uuid``
column keeps a UUID in lower case, a ``char(n)`` drops trailing spaces and
an ``enum`` or ``set`` keeps its own spelling and order of labels. After an
apply wrote such a value, the row no longer holds what its version stands
for at the peer that sent it, and the two would keep different values under
one version for good. Such a row becomes a new local change of this replica
(``Apply._stamp_local``), made knowing the incoming version, so the stored
form reaches every peer, the sender included. See docs/design.md, "Values a
database rewrites".

Only written rows whose value of such a column may be stored otherwise are
read back (by key, in chunks, those columns only): a value already in its
canonical form and within the column's digits is not, and a batch of other
columns costs nothing more.
Decimals are left out: ``decimal(p, s)`` pads ``12.3`` to ``12.30``, the
same number, which SQLite peers store alike (by affinity).

A user's trigger may also change what the apply wrote (a ``BEFORE`` trigger
rewriting the row, an ``AFTER`` trigger updating a row of another table that
the same batch wrote before): when a table of the batch has such triggers,
:func:`drifted` reads every written row back, all columns, and those that
differ become local changes too, as SQLite's and PostgreSQL's applies do.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from peersync._engine.model import Value
from peersync._engine.types import Column, ValueType

from .conn import Conn, q
from .schema import Tracked
from .values import converters

_CHUNK = 500
_REWRITE = (ValueType.DATE, ValueType.TIME, ValueType.TIMESTAMP, ValueType.TIMESTAMPTZ, ValueType.UUID)
_NUMBERS = (ValueType.INTEGER, ValueType.REAL, ValueType.DECIMAL, ValueType.BOOLEAN)


def rewrites(spec: Column) -> bool:
    """Can MariaDB store a value of this column in another form?"""
    declared = (spec.declared or "").lower()
    return spec.type in _REWRITE or (spec.type is ValueType.TEXT and declared.startswith(("char", "enum", "set")))


# Six fractional digits, not all zero (a zero fraction reads back without one).
_FRACTION = r"(\.(?!0{6})[0-9]{6})?"
_STAMP = r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}" + _FRACTION
_KEPT = {
    ValueType.UUID: re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"),
    ValueType.DATE: re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}"),
    ValueType.TIME: re.compile(r"-?[0-9]{2,3}:[0-5][0-9]:[0-5][0-9]" + _FRACTION),
    ValueType.TIMESTAMP: re.compile(_STAMP),
    ValueType.TIMESTAMPTZ: re.compile(_STAMP + r"\+00:00"),
}


def surely_kept(spec: Column, v: Value) -> bool:
    """Is ``v`` a value MariaDB stores and reads back as it is (the canonical
    form, its fraction within the column's digits), so it need not be read back?"""
    if v is None:
        return True
    kept = _KEPT.get(spec.type)
    if kept is None or not isinstance(v, str) or not kept.fullmatch(v):
        return False
    _, dot, frac = v.partition(".")
    return not dot or len(frac.split("+")[0].rstrip("0")) <= (spec.precision or 0)


def rewritten(
    conn: Conn, t: Tracked, rows: Sequence[tuple[tuple[Value, ...], Sequence[Value]]], bind: Callable[[Any], Any]
) -> set[tuple[Value, ...]]:
    """The keys among ``rows`` (each a key and the values received, in the
    canonical forms) whose stored value of such a column differs from the
    value received. ``bind`` turns a key into its driver parameters."""
    cols = [i for i, s in enumerate(t.specs) if rewrites(s)]
    if not cols or not rows:
        return set()
    to, _ = converters(t.specs)
    kp = t.schema.key_positions
    received = {key: values for key, values in rows if not all(surely_kept(t.specs[i], values[i]) for i in cols)}
    tup = "(" + ", ".join(["%s"] * len(kp)) + ")"
    names = [t.schema.columns[i] for i in (*kp, *cols)]
    found: set[tuple[Value, ...]] = set()
    keys = list(received)
    for n in range(0, len(keys), _CHUNK):
        chunk = keys[n : n + _CHUNK]
        cond = f"({', '.join(q(t.schema.columns[p]) for p in kp)}) IN ({', '.join([tup] * len(chunk))})"
        for got in conn.execute(
            f"SELECT {', '.join(t.read(c) for c in names)} FROM {q(t.name)} WHERE {cond}",
            [v for key in chunk for v in bind(key)],
        ).fetchall():
            key = tuple(to[p](v) for p, v in zip(kp, got, strict=False))
            values = received.get(key)
            if values is None:  # its key itself reads back in another form: not judged here
                continue
            stored = got[len(kp) :]
            if any(
                type(w := to[i](v)) is not type(values[i]) or w != values[i] for i, v in zip(cols, stored, strict=True)
            ):
                found.add(key)
    return found


def _same(spec: Column, stored: Value, received: Value) -> bool:
    """Does the value read back stand for the value received? Numbers by
    value (``12.30`` is ``12.3``, ``1`` is ``1.0``), everything else exactly."""
    if stored is None or received is None:
        return stored is None and received is None
    if spec.type in _NUMBERS:
        try:
            return Decimal(str(stored)) == Decimal(str(received))
        except (InvalidOperation, ValueError):
            return False
    return type(stored) is type(received) and stored == received


def drifted(
    conn: Conn, t: Tracked, rows: Sequence[tuple[tuple[Value, ...], Sequence[Value] | None]], bind: Callable[[Any], Any]
) -> dict[tuple[Value, ...], bool]:
    """Rows the apply wrote that something else changed afterwards in its
    transaction (a user's trigger on this or another table): ``rows`` are
    each a key and the values written (None for a delete). Returns each such
    key and whether its row is gone now. Matched by key in SQL (the column's
    own collation), so a key stored in another form is still its row."""
    to, _ = converters(t.specs)
    found: dict[tuple[Value, ...], bool] = {}
    key = t.schema.key
    on = " AND ".join(f"u.{q(c)} = x.k{i}" for i, c in enumerate(key))
    cols = ", ".join(t.read(c, "u") for c in t.schema.columns)
    for n in range(0, len(rows), _CHUNK):
        chunk = rows[n : n + _CHUNK]
        derived = " UNION ALL ".join(
            f"SELECT {i} AS n, " + ", ".join(f"%s AS k{j}" for j in range(len(key))) for i in range(len(chunk))
        )
        params = [v for k, _ in chunk for v in bind(k)]
        for i, present, *stored in conn.execute(
            f"SELECT x.n, u.{q(key[0])} IS NOT NULL, {cols} FROM ({derived}) AS x LEFT JOIN {q(t.name)} AS u ON {on}",
            params,
        ).fetchall():
            k, got = chunk[int(i)]
            if got is None:
                if present:  # deleted, and back
                    found[k] = False
            elif not present:
                found[k] = True
            elif not all(_same(s, f(v), w) for s, f, v, w in zip(t.specs, to, stored, got, strict=True)):
                found[k] = False
    return found
