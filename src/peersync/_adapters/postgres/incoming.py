"""An incoming batch made ready for the PostgreSQL apply, before any transaction.

:func:`prepare` decodes and validates the whole batch (``ProtocolError``) and
binds each value for PostgreSQL (``values.converter``; a value that does not
fit its column marks its row, which becomes an ``error`` conflict). A table
whose rows are all an initial sync's short rows, fit for the direct ``COPY``
of never-seen rows (``fresh.py``), is kept in that form instead
(``short.py``): no object per row unless the apply needs them after all
(:meth:`Table.materialize`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from peersync._engine.knowledge import Version
from peersync._engine.model import Batch, Change, Value
from peersync._engine.wire import Envelope, decode_batch

from . import fresh, short
from .schema import Scope, Tracked
from .values import BindValue, Unfit, converter

KNOWN, APPLY, CONFLICT, LEARN, DEFER, MERGE, FAILED = range(7)


@dataclass(slots=True)
class Row:
    """One incoming change and what the apply decided for it."""

    change: Change
    mark: int  # its extra made-with knowledge (0: none)
    key: tuple[Value, ...]
    bound: list[BindValue] | None  # every column bound for PostgreSQL; None when a value does not fit
    unfit: str = ""
    action: int = KNOWN
    local: tuple[Any, ...] | None = None  # its tracking row: lt, urep, utick, crep, ctick, ctime, del, scope, mw
    ord: int = 0  # its row number in the staging table (0: not loaded, its values do not fit)

    @property
    def version(self) -> Version:
        return self.change[2]

    @property
    def deleted(self) -> bool:
        return self.change[1]


@dataclass
class Table:
    t: Tracked
    rows: list[Row] = field(default_factory=list)
    staging: str = ""
    fresh: bool = False  # written by fresh.write: the staged steps skip it
    # The prepared table this one was made from: a batch whose rows fresh.write
    # could not take is not offered to it again when the apply is retried.
    origin: Table | None = None
    no_fresh: bool = False
    short: short.ShortRows | None = None  # the rows, until materialized

    def copy(self) -> Table:
        """A fresh copy for one attempt of the apply: it decides everything again."""
        rows = [Row(r.change, r.mark, r.key, r.bound, r.unfit) for r in self.rows]
        return Table(self.t, rows, origin=self, short=self.short)

    def materialize(self) -> None:
        """Make short rows :class:`Row` objects, as the staged path needs them."""
        if self.short is not None:
            self.rows = bind(self.t, self.short.changes(), [])
            self.short = None


def prepare(sc: Scope, data: bytes, env: Envelope) -> tuple[Batch, dict[str, Table]]:
    """The batch ``data`` (whose envelope ``env`` was opened) decoded and
    validated, and its tables' rows bound. Raises ``ProtocolError``."""
    by_name = {t.name: t for t in sc.tables}
    shorts: dict[str, short.ShortRows] = {}
    # A user's trigger on any table of the batch may change rows of another: no direct COPY.
    if not any(by_name[name].side_effects for name, _, _ in env.tables):
        for name, base, rows in env.tables:
            t = by_name[name]
            if len(rows) >= fresh.MIN_ROWS and fresh.eligible(t):
                got = short.parse(t, env.source, env.first, env.last, base, rows)
                if got is not None:
                    shorts[name] = got
    if len(shorts) == len(env.tables):
        # Every row is a short row that parse checked as decode_batch would.
        batch = Batch(
            env.scope, env.source, env.fingerprint, env.made_with, env.first, env.last, env.final, {}, tuple(env.extras)
        )  # fmt: skip
    else:
        batch = decode_batch(data, sc.schemas)
    tables: dict[str, Table] = {}
    for name, _, _ in env.tables:
        t = by_name[name]
        if name in shorts:
            tables[name] = Table(t, short=shorts[name])
        else:
            tables[name] = Table(t, bind(t, batch.changes[name], batch.extra_of.get(name)))
    return batch, tables


def bind(t: Tracked, changes: list[Change], marks: list[int] | None) -> list[Row]:
    """``changes`` of table ``t`` (with their extra made-with marks) as rows
    whose values are bound for PostgreSQL."""
    kpos = t.schema.key_positions
    convert = [converter(c) for c in t.columns]
    out: list[Row] = []
    for ch, mark in zip(changes, marks or [0] * len(changes), strict=True):
        values = ch[5]
        if ch[1]:  # a tombstone carries its key only
            full: list[Value] = [None] * len(t.columns)
            for p, v in zip(kpos, values, strict=True):
                full[p] = v
            values = tuple(full)
        key = tuple(values[p] for p in kpos)
        row = Row(ch, mark, key, None)
        try:
            row.bound = [f(v) for f, v in zip(convert, values, strict=True)]
            if any(row.bound[p] is None for p in kpos):
                raise Unfit("a key column is NULL")
        except Unfit as exc:
            row.unfit = str(exc)
        out.append(row)
    return out
