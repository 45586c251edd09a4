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
  12345678901234.123, ``'99999999999999999999'`` 1e+20, ``'1e400'`` inf;
- an integer beyond 2**53 becomes the nearest double with REAL affinity.

A value is kept when SQLite stores the same number, with the same sign of
zero: ``'12.30'`` stored as the REAL 12.3, ``'-0.000000'`` as the integer 0
(a decimal has no negative zero), 2 as 2.0 in a REAL column. A REAL is
read as its shortest ``repr``, which is how every peer takes it from here
(a server adapter turns a float into a decimal by ``repr``):
``'1234567890.123456'`` (16 digits) is kept. A decimal of at most 15
significant digits is kept by SQLite's own promise (its text-to-REAL
conversion preserves 15 digits), and is not looked at one by one: that
conversion is not correctly rounded, so now and then such a text reads back
a neighbouring double (``'748388.385037'`` as 748388.3850370001, about 3 in
10,000 random 12-digit decimals), the same number to 15 digits.

The texts that may change (more than 15 characters once trailing zeros are
dropped, or anything but digits, ``.`` and ``-``) are stored in a scratch
table of the same affinity and read back: which double SQLite picks is its
business.

The texts that are kept are not left to that conversion, though: a decimal
column's plain fractional texts of at most 15 digits are bound as the double
Python reads them (:meth:`Fit.round_decimals`, correctly rounded), which
SQLite stores as such, so ``'748388.385037'`` is stored as the double whose
shortest ``repr`` is that text, and a server that reads it from here later
finds the decimal it sent, not one that its scale refuses.
"""

from __future__ import annotations

import sqlite3
from array import array
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from itertools import compress, repeat
from math import copysign
from operator import is_, is_not, itemgetter, ne, not_
from typing import Any

from peersync._engine.model import Value
from peersync._engine.types import ValueType

from .schema import PREFIX, Tracked, json_text

_CHECKED = (ValueType.REAL, ValueType.DECIMAL)
_SAFE_FLOAT = float(2**53)  # every integer up to this far from 0 is a double exactly
_DIGITS = 15  # significant digits SQLite keeps through REAL
_PLAIN = "0123456789.-"  # the characters of a decimal in plain notation
_PLAIN_BYTES = _PLAIN.encode()
_SHORT = 300  # characters: a plain decimal no longer than this is far inside a double's range
_PROBE = f"temp.{PREFIX}probe"
_PROBE_COLUMNS = {"real": "r", "numeric": "n"}
_NONE = type(None)
_NOT_NUMBERS = ("{", "[", '"', "t", "f", "n")  # what an object, array, string or literal opens with


def _of_type(col: list[Any], kind: type) -> list[Any]:
    """The values of ``col`` whose type is exactly ``kind`` (a pass in C)."""
    return list(compress(col, map(is_, map(type, col), repeat(kind))))


def _negative_zero(floats: list[Any], nulls: int) -> bool:
    """Does ``floats`` (floats and ``nulls`` Nones) hold a -0.0? The one zero
    with its sign bit set: a byte 0x80 among the bytes of the zeros."""
    zeros = list(filter(not_, floats))
    if nulls:
        zeros = list(compress(zeros, map(is_not, zeros, repeat(None))))
    return b"\x80" in array("d", zeros).tobytes()


def _may_change(text: str) -> bool:
    """Might SQLite store the number ``text`` spells as another one? Not if
    it is plain decimal notation of at most 15 significant digits."""
    return len(text) > _SHORT or len(text.rstrip("0")) > _DIGITS or bool(text.strip(_PLAIN))


def _same_number(sent: str, stored: Value) -> bool:
    """Is ``stored`` (what SQLite made of the text ``sent``) the number
    ``sent`` spells: its shortest ``repr``, or its first 15 significant
    digits for a text of no more digits than that?"""
    if type(stored) is str:
        return stored == sent
    if type(stored) not in (int, float):
        return False
    try:
        want = Decimal(sent)
        if Decimal(repr(stored)) == want:
            return True
        return len(want.normalize().as_tuple().digits) <= _DIGITS and Decimal(format(stored, ".15g")) == want
    except InvalidOperation:
        return False


class Fit:
    """The columns of one table that a check looks at, with their affinity."""

    def __init__(self, conn: sqlite3.Connection, t: Tracked) -> None:
        self.conn, self.t = conn, t
        s = t.schema
        specs = s.specs or ()
        self.columns = [(i, s.types[i]) for i, spec in enumerate(specs) if spec.type in _CHECKED]
        # JSON columns whose affinity turns a bare-number document into a number.
        self.json = [i for i, spec in enumerate(specs) if spec.type is ValueType.JSON and s.types[i] in _PROBE_COLUMNS]
        self._strict: bool | None = None
        # The decimal columns :meth:`unfit` found texts in: (position in a row, the column's values).
        self._texts_of: list[tuple[int, list[Any]]] = []

    def affinity(self, i: int) -> str:
        """``real``, ``numeric`` or ``blob`` (none: ``ANY`` in a STRICT table)."""
        aff = self.t.schema.types[i]
        if aff == "numeric" and self.t.schema.specs[i].declared.strip().upper() == "ANY":
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
        -0.0, an integer beyond 2**53 bound for REAL, a text that
        :func:`_may_change`). Nothing is written but a temporary scratch table."""
        out: dict[int, str] = {}
        self._texts_of = []
        for i, aff in self.columns:
            col = list(map(itemgetter(first + i), rows))
            kinds = set(map(type, col))
            spec = self.t.schema.specs[i]
            what = f"column {spec.name}: "
            declared = spec.declared or aff.upper()
            if float in kinds:
                for j, f in self._floats(col, kinds, self.affinity(i)):
                    if f != f:
                        out.setdefault(j, f"{what}SQLite cannot store NaN (it stores NULL)")
                    else:
                        kept = "0.0" if aff == "real" else "0"
                        out.setdefault(j, f"{what}SQLite cannot store -0.0 in {declared} (it keeps {kept})")
            if int in kinds and aff == "real":
                for j, n, w in self._ints(col):
                    out.setdefault(j, f"{what}{n} would lose precision in {declared} (SQLite stores {w!r})")
            if str in kinds and self.affinity(i) != "blob":
                if spec.type is ValueType.DECIMAL:
                    self._texts_of.append((first + i, col))
                for j, text, stored in self._texts(col, aff):
                    out.setdefault(j, f"{what}{text} would lose precision in {declared} (SQLite stores {stored!r})")
        for i in self.json:
            for j, doc, sent in self._documents(list(map(itemgetter(first + i), rows)), self.t.schema.types[i]):
                name = self.t.schema.specs[i].name
                out.setdefault(
                    j, f"column {name}: SQLite stores the JSON document {doc} as a number, sent on as {sent}"
                )
        return out

    def _documents(self, col: list[Any], aff: str) -> list[tuple[int, str, str]]:
        """(seq, document, the text it would travel on as) of the JSON
        documents of ``col`` that a column of affinity ``aff`` stores as a
        number whose text is not the document's (``'2.50'``, ``'1e2'``,
        ``'-0'``): only texts that do not open an object, array, string or
        literal are looked at, in the scratch table."""
        sent = [(j, v) for j, v in enumerate(col, start=1) if type(v) is str and v[:1] not in _NOT_NUMBERS]
        if not sent:
            return []
        out = self._probe(sent, aff, json_text)
        return [(j, v, w) for (j, v), w in zip(sent, out, strict=True) if w != v]

    def _probe(self, sent: list[tuple[int, str]], aff: str, read: Callable[[str], str]) -> list[Value]:
        """Store the texts of ``sent`` in the scratch table's column of
        affinity ``aff`` and read back ``read(column)`` of each, in order."""
        conn, c = self.conn, _PROBE_COLUMNS[aff]
        conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {_PROBE[5:]} (i INTEGER PRIMARY KEY, r REAL, n NUMERIC)")
        conn.execute(f"DELETE FROM {_PROBE}")
        conn.executemany(f"INSERT INTO {_PROBE} (i, {c}) VALUES (?, ?)", sent)
        out = [w for (w,) in conn.execute(f"SELECT {read(c)} FROM {_PROBE} ORDER BY i")]
        conn.execute(f"DELETE FROM {_PROBE}")
        return out

    @staticmethod
    def _floats(col: list[Any], kinds: set[type], aff: str) -> list[tuple[int, float]]:
        """(seq, value) of the NaNs in ``col``, and of its -0.0s unless ``aff`` is none."""
        if kinds <= {float, _NONE}:  # the usual REAL column: no copy
            floats, nulls = col, col.count(None) if _NONE in kinds else 0
        else:
            floats, nulls = _of_type(col, float), 0
        nonzero = list(filter(None, floats))
        total = sum(nonzero)
        if total - total == 0 and len(nonzero) + nulls == len(floats):
            return []  # no NaN (nor infinity), no zero
        # NaN is the one value unequal to itself.
        if not any(map(ne, nonzero, nonzero)) and (aff == "blob" or not _negative_zero(floats, nulls)):
            return []
        return [
            (j, v)
            for j, v in enumerate(col, start=1)
            if type(v) is float and (v != v or (aff != "blob" and v == 0 and copysign(1.0, v) < 0))
        ]

    @staticmethod
    def _ints(col: list[Any]) -> list[tuple[int, int, float]]:
        """(seq, value, what REAL affinity stores) of the integers of ``col`` no double holds."""
        ints = _of_type(col, int)
        if max(ints) <= _SAFE_FLOAT and min(ints) >= -_SAFE_FLOAT:
            return []
        return [(j, v, float(v)) for j, v in enumerate(col, start=1) if type(v) is int and float(v) != v]

    def _texts(self, col: list[Any], aff: str) -> list[tuple[int, str, Value]]:
        """(seq, text, what it stores) of the texts of ``col`` that SQLite
        changes in a column of affinity ``aff``: those that :func:`_may_change`
        are stored in a scratch column of that affinity and read back."""
        texts = _of_type(col, str)
        plain = not "".join(texts).encode("ascii", "replace").translate(None, _PLAIN_BYTES)
        longest = max(map(len, texts))
        digits = longest if longest > _SHORT else max(map(len, map(str.rstrip, texts, repeat("0"))))
        if plain and digits <= _DIGITS:
            return []
        sent = [(j, v) for j, v in enumerate(col, start=1) if type(v) is str and _may_change(v)]
        stored = self._probe(sent, aff, lambda c: c)
        return [(j, v, w) for (j, v), w in zip(sent, stored, strict=True) if not _same_number(v, w)]

    def round_decimals(self, rows: list[list[Any]]) -> None:
        """Replace, in ``rows``, each plain fractional text of at most 15
        significant digits bound for a ``decimal`` column with REAL or NUMERIC
        affinity by the nearest double, which SQLite then stores as it is: its
        own text-to-REAL conversion may give a neighbouring double. Texts of
        whole numbers (SQLite makes them integers exactly), zeros (a -0 text
        is stored as 0 either way) and any other text are left as they are.
        Call after :meth:`unfit` of the same rows, which saw the texts as
        they arrived and noted the columns that hold any."""
        for k, col in self._texts_of:
            for row, v in zip(rows, col, strict=True):
                if type(v) is str and "." in v and not _may_change(v):
                    try:
                        f = float(v)
                    except ValueError:  # "1.2.3": SQLite keeps it as text
                        continue
                    if f:
                        row[k] = f
