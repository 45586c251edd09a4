"""Incoming rows that collide with local rows of other keys on a UNIQUE
index, on PostgreSQL: as on SQLite, a conflict callback decides.

The callback sees the incoming row as ``remote_row`` and the first colliding
local row as ``local_row`` (type ``error``). ``Outcome.SOURCE`` deletes the
colliding local rows and writes the incoming one; ``Outcome.MERGE`` writes
the merged row. Both become local changes made knowing the incoming
version (written after the batch's rows, with the tracking triggers on).
Any other answer, a failing callback and every built-in policy leave the
row a pending ``error`` conflict. UNIQUE indexes on expressions, partial
ones and exclusion constraints are not looked into: such a row stays an error.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Protocol

import psycopg

from peersync._engine.knowledge import Version
from peersync._engine.model import Conflict, ConflictHandler, ConflictType, Outcome, Policy, Value
from peersync._engine.rules import LocalState, policy_name, resolve

from .schema import Scope, Tracked, q, read_expr
from .values import bound_param


class SetApply(Protocol):
    """What of the apply (``apply.SetApply``) a collision needs."""

    conn: psycopg.Connection[Any]
    sc: Scope
    handler: ConflictHandler

    def _local_version(self, local: tuple[Any, ...]) -> Version: ...


def colliding(apply: SetApply, t: Tracked, bound: list[Any]) -> list[tuple[list[Any], dict[str, Value]]]:
    """Local rows of other keys holding the incoming row's values (``bound``)
    in a UNIQUE index: each as its raw key values and its wire row."""
    s = t.schema
    kp = s.key_positions
    pos = {c: i for i, c in enumerate(s.columns)}
    itself = " AND ".join(f"u.{q(s.columns[p])} = {bound_param(t, p, '%s')}" for p in kp)
    vals = ", ".join(read_expr(c, f"u.{q(c.spec.name)}") for c in t.columns)
    raw = ", ".join(f"u.{q(k)}" for k in s.key)
    out: list[tuple[list[Any], dict[str, Value]]] = []
    for cols in t.uniques:
        if any(bound[pos[c]] is None for c in cols):
            continue  # NULLs never collide
        same = " AND ".join(f"u.{q(c)} = {bound_param(t, pos[c], '%s')}" for c in cols)
        for found in apply.conn.execute(
            f"SELECT {raw}, {vals} FROM {t.qualified} AS u WHERE {same} AND NOT ({itself})",
            [*(bound[pos[c]] for c in cols), *(bound[p] for p in kp)],
        ).fetchall():
            key, row = list(found[: len(kp)]), dict(zip(s.columns, found[len(kp) :], strict=True))
            if all(key != k for k, _ in out):
                out.append((key, row))
    return out


def decide(
    apply: SetApply, t: Tracked, r: Any, msg: str
) -> tuple[str, dict[str, Value], int, Conflict, list[tuple[Any, ...]]] | None:
    """What the callback decides for a row that failed with ``msg``: (kind,
    row to write, its change time, the conflict as logged, the raw keys of
    the local rows to delete), or None when the row stays a failure."""
    if isinstance(apply.handler, Policy) or r.deleted or r.bound is None or not t.uniques:
        return None
    others = colliding(apply, t, r.bound)
    if not others:
        return None
    where = " AND ".join(f"{k} = %s" for k in t.kcols)
    local = apply.conn.execute(
        f"SELECT lt, urep, utick, crep, ctick, ctime, del, scope, mw FROM {t.tracking} WHERE {where}", others[0][0]
    ).fetchone()
    loc: LocalState | None = None
    if local is not None:
        version = apply._local_version(tuple(local))
        loc = LocalState(version, version, bool(local[6]), int(local[5]))
    _, _, version, _, ctime, values = r.change
    remote = dict(zip(t.schema.columns, values, strict=True))
    c = Conflict(apply.sc.name, t.name, r.key, ConflictType.ERROR, others[0][1], remote,
                 loc.version if loc else None, version, loc.time if loc else None, ctime,
                 policy_name(apply.handler), None, msg)  # fmt: skip
    try:
        res = resolve(apply.handler, c)
    except Exception:  # a failing callback leaves the error as it is
        return None
    both = max(loc.time if loc else 0, ctime)
    if res.outcome is Outcome.SOURCE:
        return "write", remote, both, replace(c, outcome=Outcome.SOURCE), [tuple(k) for k, _ in others]
    if res.outcome is Outcome.MERGE and res.row is not None:
        merged = {**remote, **res.row}
        if set(merged) == set(t.schema.columns) and all(
            merged[k] == v for k, v in zip(t.schema.key, r.key, strict=True)
        ):
            return "merge", merged, both + 1, replace(c, outcome=Outcome.MERGE), []
    return None
