"""Values PostgreSQL stores in another form than the one received.

A ``uuid`` column keeps a UUID in lower case, ``jsonb`` reorders keys and
respaces a document, and the temporal types rewrite their text
(``10:00:00.5`` reads back as ``10:00:00.500000``, ``2024-01-02T03:04`` as
``2024-01-02 03:04:00``). After an apply wrote such a value, the row no
longer holds what its version stands for at the peer that sent it: the two
would keep different bytes under one version for good. Such a row becomes a
new local change of this replica, made knowing the incoming version (so it
supersedes it everywhere without a conflict), and carries the stored form to
every peer, the sender included. See docs/design.md, "Values a database
rewrites".

Only columns whose type can rewrite a value are compared, on the server and
against the staging table, so a batch of other columns costs nothing more.
Decimals are left out: a ``numeric(p, s)`` that pads ``12.3`` to ``12.30``
holds the same number, and SQLite stores both alike (by affinity).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from peersync._engine.types import ValueType

from .schema import NOW_MS, TICK, PgColumn, Tracked, q, read_expr

_TEMPORAL = (ValueType.DATE, ValueType.TIME, ValueType.TIMESTAMP, ValueType.TIMESTAMPTZ)


def rewrites_on_server(col: PgColumn) -> bool:
    """Can PostgreSQL store a text value of this column in another form?
    (A UUID is normalized when bound, see :func:`rewritten_when_bound`.)"""
    return col.spec.type in _TEMPORAL or (col.spec.type is ValueType.JSON and col.typname == "jsonb")


def rewritten_when_bound(t: Tracked, received: Sequence[object], bound: Sequence[object]) -> bool:
    """Did binding change a UUID (upper case, no hyphens, 16 bytes)?"""
    return any(
        c.spec.type is ValueType.UUID and received[i] is not None and received[i] != bound[i]
        for i, c in enumerate(t.columns)
    )


def differs_sql(t: Tracked, staging: str, match: str) -> str | None:
    """A query for the ``ord`` of each staged live row (among ``%s``, an
    array of ords) whose stored value of such a column differs from the text
    received; None when the table has no such column."""
    cols = [(i, c) for i, c in enumerate(t.columns) if rewrites_on_server(c)]
    if not cols:
        return None
    differs = " OR ".join(f"{read_expr(c, f'u.{q(c.spec.name)}')} IS DISTINCT FROM x.c{i}" for i, c in cols)
    return (
        f"SELECT x.ord FROM {staging} AS x JOIN {t.qualified} AS u ON {match}"
        f" WHERE x.ord = ANY(%s) AND NOT x.del AND ({differs})"
    )


# A tracking row made a new local change that supersedes what it held (the
# creation version kept); the columns are those of alias t.
AS_LOCAL = (
    f"lt = nextval('{TICK}'), urep = NULL, utick = NULL, scope = NULL,"
    " crep = CASE WHEN t.ctick IS NULL THEN t.urep ELSE t.crep END,"
    " ctick = CASE WHEN t.ctick IS NULL THEN COALESCE(t.utick, t.lt) ELSE t.ctick END"
)


def restamp_sql(t: Tracked, staging: str, keys: str) -> str:
    """Make the rows of the staged ``ord`` in ``%s`` new local changes: a
    new tick, the incoming version kept as what it supersedes (its creation
    too), a change time one above the incoming one (a change made on top of
    it, yet not later than a concurrent edit made after it). ``keys``: the
    staged key as the tracking table's ``k0, k1, ...``."""
    match = " AND ".join(f"t.{k} = d.{k}" for k in t.kcols)
    return (
        f"UPDATE {t.tracking} AS t SET {AS_LOCAL}, ctime = t.ctime + 1"
        f" FROM (SELECT {keys} FROM {staging} AS x WHERE x.ord = ANY(%s)) AS d WHERE {match}"
    )


def restamp_rewritten(
    conn: Any,
    t: Tracked,
    staging: str,
    rows: Sequence[tuple[int, Sequence[object], Sequence[object] | None]],
    param: Callable[[Tracked, int, str], str],
) -> None:
    """Make the written live ``rows`` (staged ``ord``, values received,
    values bound) that hold another form than received new local changes.
    ``param(t, i, ref)``: staged column ``i`` as its column's type, in SQL."""
    if not rows:
        return
    s = t.schema
    match = " AND ".join(f"u.{q(s.columns[p])} = {param(t, p, f'x.c{p}')}" for p in s.key_positions)
    query = differs_sql(t, staging, match)
    found = {int(o) for (o,) in conn.execute(query, [[o for o, _, _ in rows]])} if query else set()
    found.update(o for o, got, bound in rows if bound is not None and rewritten_when_bound(t, got, bound))
    if found:
        keys = ", ".join(f"{param(t, p, f'x.c{p}')} AS {k}" for k, p in zip(t.kcols, s.key_positions, strict=True))
        conn.execute(restamp_sql(t, staging, keys), [sorted(found)])


def restamp_drifted(
    conn: Any, t: Tracked, staging: str, ords: list[int], param: Callable[[Tracked, int, str], str]
) -> None:
    """Rows a batch wrote (staged ``ords``) that something changed afterwards
    in the same transaction (a user's trigger, a cascade) hold neither the
    incoming version nor what its stamp says: they become new local changes
    (a tombstone when the row is gone), so every peer gets what this one
    holds. ``param`` as for :func:`restamp_rewritten`."""
    if not ords:
        return
    s = t.schema
    match = " AND ".join(f"u.{q(s.columns[p])} = {param(t, p, f'x.c{p}')}" for p in s.key_positions)
    differs = " OR ".join(
        f"u.{q(c.spec.name)}::text IS DISTINCT FROM x.c{i}"
        if c.typname == "json"  # json has no equality
        else f"u.{q(c.spec.name)} IS DISTINCT FROM {param(t, i, f'x.c{i}')}"
        for i, c in enumerate(t.columns)
    )
    present = f"u.{q(s.key[0])} IS NOT NULL"
    keys = ", ".join(f"{param(t, p, f'x.c{p}')} AS {k}" for k, p in zip(t.kcols, s.key_positions, strict=True))
    match_t = " AND ".join(f"t.{k} = d.{k}" for k in t.kcols)
    conn.execute(
        f"UPDATE {t.tracking} AS t SET {AS_LOCAL}, ctime = greatest({NOW_MS}, t.ctime + 1), del = d.gone"
        f" FROM (SELECT {keys}, NOT {present} AS gone FROM {staging} AS x LEFT JOIN {t.qualified} AS u"
        f" ON {match} WHERE x.ord = ANY(%s)"
        f" AND CASE WHEN x.del THEN {present} ELSE NOT {present} OR {differs} END) AS d WHERE {match_t}",
        [ords],
    )
