"""The read-only reports every SQL adapter gives: a scope's status and the conflict log."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from peersync._engine.model import Conflict, Status
from peersync._engine.names import Names

from .meta import PREFIX, Meta, ScopeRef


def scope_status(
    meta: Meta,
    sc: ScopeRef,
    fingerprint: str,
    schemas: Iterable[str],
    tracking: Iterable[str],
    tick: int,
    pending: int,
    names: Names | None = None,
) -> Status:
    """The status of ``sc`` at local tick ``tick``, in the caller's read
    transaction. ``tracking``: its tracking tables as SQL names (quoted where
    they need it); ``pending``: the number of rows with changes kept out of
    knowledge, which each adapter counts its way. ``schemas`` are the tables'
    global names; ``names`` this database's own where they differ."""
    stored, forgotten = meta.stored_knowledge(sc.name)
    counts = "SELECT count(*), COALESCE(sum(CASE WHEN del THEN 1 ELSE 0 END), 0) FROM "
    rows = tombs = 0
    for name in tracking:
        n, d = meta.execute(counts + name).fetchone()
        rows, tombs = rows + int(n), tombs + int(d)
    (nconf,) = meta.execute(f"SELECT count(*) FROM {PREFIX}conflicts WHERE scope = ?", (sc.name,)).fetchone()
    k = stored.add_range(sc.rid, 1, tick)
    shown = names.to_mapping() if names else {}
    return Status(
        sc.name, sc.rid, tick, k, forgotten, fingerprint, tuple(schemas), rows, tombs, int(nconf), pending, shown
    )


def logged_conflicts(
    meta: Meta, scope: str | None, limit: int | None, check: Callable[[str], object]
) -> list[Conflict]:
    """The conflict log, oldest first: of ``scope`` (``check(scope)`` raises
    for an unknown one), or of every scope (none without metadata tables)."""
    if scope is not None:
        check(scope)
    elif not meta.has_meta():
        return []
    return meta.conflicts(scope, limit)
