"""Incoming values a SQLite column would store changed: found before the
apply writes them, so their rows become ``error`` conflicts naming the
column and the reason instead of silently holding another value (as the
server adapters refuse what their columns cannot hold: ``postgres/values.py``,
``mysql/values.py``).

Only columns whose canonical type is ``real`` or ``decimal`` are looked at:
the values other columns receive are stored as they arrive. What SQLite does
with values bound for those (measured with SQLite 3.40; the tests pin it):

- a float NaN is bound as NULL, into any column;
- a float -0.0 becomes 0.0 with REAL affinity (written to disk as the
  integer 0) and the integer 0 with NUMERIC affinity; a column without
  affinity (``ANY`` in a STRICT table) keeps it;
- text that reads as a number becomes an INTEGER or a REAL with NUMERIC or
  REAL affinity, whatever that loses: ``'12345678901234.123456'`` becomes
  12345678901234.123, ``'99999999999999999999'`` 1e+20, and its conversion
  is not correctly rounded, so even a few texts of 15 digits or fewer become
  a neighbouring double (``'748388.385037'`` is stored as
  748388.3850370001). Which double it picks is SQLite's business: each such
  text is stored once in a scratch table of the same affinity and read back;
- an integer beyond 2**53 becomes the nearest double with REAL affinity.

A value is kept when SQLite stores the same number, with the same sign of
zero: ``'12.30'`` stored as the REAL 12.3, ``'-0.000000'`` as the integer 0
(a decimal has no negative zero), 2 as 2.0 in a REAL column. A REAL is
read as its shortest ``repr``, which is how every peer takes it from here
(a server adapter turns a float into a decimal by ``repr``).
"""

from __future__ import annotations

import sqlite3
from decimal import Decimal, InvalidOperation
from itertools import compress, repeat
from math import copysign
from operator import is_, itemgetter, ne, not_
from typing import Any

from peersync._engine.model import Value
from peersync._engine.types import ValueType

from .schema import PREFIX, Tracked

_CHECKED = (ValueType.REAL, ValueType.DECIMAL)
_SAFE_FLOAT = float(2**53)  # every integer up to this far from 0 is a double exactly
_PROBE = f"temp.{PREFIX}probe"
_PROBE_COLUMNS = {"real": "r", "numeric": "n"}


def _of_type(col: list[Any], kind: type) -> list[Any]:
    """The values of ``col`` whose type is exactly ``kind`` (a pass in C)."""
    return list(compress(col, map(is_, map(type, col), repeat(kind))))


def _same_number(sent: str, stored: Value) -> bool:
    """Is ``stored`` (what SQLite made of the text ``sent``) the number ``sent`` spells?"""
    if type(stored) is str:
        return stored == sent
    if type(stored) not in (int, float):
        return False
    try:
        return Decimal(repr(stored)) == Decimal(sent)
    except InvalidOperation:
        return False


class Fit:
    """The columns of one table that a check looks at, with their affinity."""

    def __init__(self, conn: sqlite3.Connection, t: Tracked) -> None:
        self.conn, self.t = conn, t
        s = t.schema
        specs = s.specs or ()
        self.columns = [(i, s.types[i]) for i, spec in enumerate(specs) if spec.type in _CHECKED]
        self._strict: bool | None = None

    def affinity(self, i: int, declared: str) -> str:
        """``real``, ``numeric`` or ``blob`` (none: ``ANY`` in a STRICT table)."""
        aff = self.t.schema.types[i]
        if aff == "numeric" and declared.strip().upper() == "ANY":
            if self._strict is None:
                row = self.conn.execute(
                    "SELECT strict FROM pragma_table_list WHERE schema = 'main' AND name = ?", (self.t.schema.name,)
                ).fetchone()
                self._strict = bool(row and row[0])
            if self._strict:
                return "blob"
        return aff

    def unfit(self, rows: list[list[Any]], first: int) -> dict[int, str]:
        """Rows (by ``seq``: position in ``rows`` from 1) holding a value that
        SQLite would store changed, each with why (its first such column).
        ``rows`` are as decoded, their values from position ``first`` on.

        A few passes in C per checked column; Python looks at single values
        only in a column that holds one that may change (a float NaN or
        -0.0, an integer beyond 2**53 bound for REAL, text bound for REAL
        or NUMERIC). Nothing is written outside the temporary scratch table."""
        out: dict[int, str] = {}
        specs = self.t.schema.specs
        for i, aff in self.columns:
            col = list(map(itemgetter(first + i), rows))
            kinds = set(map(type, col))
            if not kinds & {float, int, str}:
                continue
            spec = specs[i]
            name, declared = spec.name, spec.declared or aff.upper()
            if float in kinds:
                aff = self.affinity(i, spec.declared)
                floats = col if kinds == {float} else _of_type(col, float)
                # NaN is the one value unequal to itself; -0.0 the one falsy float whose repr has a sign.
                if any(map(ne, floats, floats)) or (aff != "blob" and "-0.0" in map(repr, filter(not_, floats))):
                    for j, v in enumerate(col, start=1):
                        if type(v) is not float or j in out:
                            continue
                        if v != v:
                            out[j] = f"column {name}: SQLite cannot store NaN (it stores NULL)"
                        elif aff != "blob" and v == 0 and copysign(1.0, v) < 0:
                            kept = "0.0" if aff == "real" else "0"
                            out[j] = f"column {name}: SQLite cannot store -0.0 in {declared} (it keeps {kept})"
            if int in kinds and aff == "real":
                ints = _of_type(col, int)
                if max(ints) > _SAFE_FLOAT or min(ints) < -_SAFE_FLOAT:
                    for j, v in enumerate(col, start=1):
                        if type(v) is int and float(v) != v and j not in out:
                            out[j] = (
                                f"column {name}: {v} would lose precision in {declared} (SQLite stores {float(v)!r})"
                            )
            if str in kinds:
                aff = self.affinity(i, spec.declared)
                for j, v, w in self._texts(col, aff) if aff != "blob" else ():
                    out.setdefault(j, f"column {name}: {v} would lose precision in {declared} (SQLite stores {w!r})")
        return out

    def _texts(self, col: list[Any], aff: str) -> list[tuple[int, str, Value]]:
        """The texts of ``col`` that SQLite changes in a column of affinity
        ``aff``: (seq, text, what it stores), found by storing each in a
        scratch column of that affinity."""
        conn, c = self.conn, _PROBE_COLUMNS[aff]
        conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {_PROBE[5:]} (i INTEGER PRIMARY KEY, r REAL, n NUMERIC)")
        conn.execute(f"DELETE FROM {_PROBE}")
        sent = [(j, v) for j, v in enumerate(col, start=1) if type(v) is str]
        conn.executemany(f"INSERT INTO {_PROBE} (i, {c}) VALUES (?, ?)", sent)
        stored = conn.execute(f"SELECT {c} FROM {_PROBE} ORDER BY i").fetchall()
        conn.execute(f"DELETE FROM {_PROBE}")
        return [(j, v, w) for (j, v), (w,) in zip(sent, stored, strict=True) if not _same_number(v, w)]
