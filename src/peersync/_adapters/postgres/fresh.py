"""Rows never seen here, written by ``COPY`` straight into their tables.

An initial sync sends rows this database has never held: no user row, no
tracking row, versions it does not know. For such a batch the staged path
(``apply.py``: stage, lock and read tracking state, upsert, stamp) does
work that can only find nothing. Here the batch's rows are copied into the
user table, then their tracking rows into the tracking table, in a
savepoint, with the tracking triggers stepping aside (as for every write of
the apply to a table without side effects).

Why it is safe: both tables have the key as their primary key, so a key
that has a user row or a tracking row here (a tombstone, a concurrent
writer's row, committed or not) makes its ``COPY`` fail, the savepoint
rolls everything back, and the batch takes the staged path, which triages
it row by row. A concurrent writer's uncommitted row makes the ``COPY`` wait
for it, then fail (or meet a serialization failure or a deadlock: the
staged path meets the same write and the caller retries as for any apply,
without this path). Any other failure (a foreign key, a CHECK,
a value the column refuses) also sends the batch to the staged path, which
isolates the failing rows. Only tables whose values cannot come back in
another form are eligible (see ``normalized.py``): nothing is left to check
after the write.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from peersync._engine.types import ValueType

from .conn import savepoint
from .normalized import rewrites_on_server
from .schema import TICK, TRACKING_COLUMNS, Tracked, q
from .short import ShortRows
from .values import BindValue

# Smaller batches gain little and would pay for a failed COPY more often.
MIN_ROWS = 100

Stamp = tuple[Any, ...]  # urep, utick, crep, ctick, ctime, mw


def eligible(t: Tracked) -> bool:
    """Can rows of ``t`` take this path? Not when something else writes in the
    apply's statements (a user's trigger, a cascade: the staged path looks
    for their effects) or a column can hold another form than received."""
    return not t.side_effects and not any(rewrites_on_server(c) or c.spec.type is ValueType.UUID for c in t.columns)


def write(conn: psycopg.Connection[Any], t: Tracked, scope: int, rows: Sequence[tuple[list[BindValue], Stamp]]) -> bool:
    """Copy ``rows`` (values as bound, stamp) into ``t`` and its tracking
    table as changes arrived through scope index ``scope``, each with a new
    local tick in row order. False, with nothing written, when any row
    cannot be written this way (a serialization failure or a deadlock too:
    the staged path meets the concurrent write again and reports it)."""
    kpos = t.schema.key_positions
    tcols = ", ".join([*t.kcols, *TRACKING_COLUMNS])

    def copy(ticks: list[str]) -> None:
        # Text COPY: each value is read by its column's input function, as
        # the staged path's casts do.
        with conn.cursor() as cur, cur.copy(_user_copy(t)) as cp:
            for bound, _ in rows:
                cp.write_row(bound)
        with conn.cursor() as cur, cur.copy(f"COPY {t.tracking} ({tcols}) FROM STDIN") as cp:
            for (bound, (urep, utick, crep, ctick, ctime, mw)), lt in zip(rows, ticks, strict=True):
                cp.write_row((*[bound[p] for p in kpos], lt, urep, utick, crep, ctick, ctime, False, scope, mw))

    return _copied(conn, t, len(rows), copy)


def write_short(conn: psycopg.Connection[Any], t: Tracked, scope: int, rows: ShortRows, urep: int, mw: int) -> bool:
    """:func:`write` for rows of the short form (``short.py``): their text
    made a column at a time; the versions are the source's (replica index
    ``urep`` here), made with the partial knowledge record ``mw``."""
    # crep and ctick are left out: NULL, the creation is the version.
    tcols = ", ".join([*t.kcols, "utick", "ctime", "lt", "urep", "scope", "mw", "del"])

    def copy(ticks: list[str]) -> None:
        # The text is made before each COPY starts: the server does not wait for it.
        user, tracking = rows.user_text(), rows.tracking_text(ticks, f"\t{urep}\t{scope}\t{mw}\tf")
        with conn.cursor() as cur, cur.copy(_user_copy(t)) as cp:
            cp.write(user)
        with conn.cursor() as cur, cur.copy(f"COPY {t.tracking} ({tcols}) FROM STDIN") as cp:
            cp.write(tracking)

    return _copied(conn, t, len(rows), copy)


def _user_copy(t: Tracked) -> str:
    return f"COPY {t.qualified} ({', '.join(q(c) for c in t.schema.columns)}) FROM STDIN"


def _copied(conn: psycopg.Connection[Any], t: Tracked, n: int, copy: Callable[[list[str]], None]) -> bool:
    """Run ``copy`` (given ``n`` new local ticks, ascending, as text) in a
    savepoint with ``t``'s triggers stepping aside; False if it failed."""
    try:
        with savepoint(conn):
            conn.execute("SELECT set_config('peersync.applying', %s, true)", (str(t.tid),))
            (ticks,) = conn.execute(  # type: ignore[misc]
                f"SELECT string_agg(x::text, ',' ORDER BY x) FROM (SELECT nextval('{TICK}') AS x"
                " FROM generate_series(1, %s)) AS s",
                (n,),
            ).fetchone()
            copy(ticks.split(","))
            conn.execute("SELECT set_config('peersync.applying', '', true)")
    except psycopg.Error:
        return False
    return True
