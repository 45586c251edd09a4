"""Ending a session, as every SQL adapter does: one idempotent call."""

from __future__ import annotations

from collections.abc import Callable

from peersync._engine.knowledge import Knowledge
from peersync._engine.model import SessionEnd

from .meta import PREFIX, Meta, ScopeRef

SESSIONS_KEPT = 1000  # finished sessions remembered per scope, for retried finish calls


def end_session(
    meta: Meta, sc: ScopeRef, end: SessionEnd, clock: Callable[[], int], compact: Callable[[], None] | None = None
) -> Knowledge:
    """Record the end of session ``end.session`` in the caller's write
    transaction and return the scope's stored knowledge of other replicas.

    The first call for a session merges what it learned (less what it kept
    out), forgets pending changes the source's knowledge beats, logs its
    failed rows, runs ``compact`` (if any) and drops partial records the
    knowledge now holds (up to local tick ``clock()``). A retried call finds
    the session recorded and changes nothing. The scope's row is read first
    under the dialect's row lock, so calls for one scope take turns and the
    second call for a session sees the first one's record (PostgreSQL has no
    gap locks: locking the absent session row alone would not do)."""
    meta.load_replicas()
    stored, _ = meta.stored_knowledge(sc.name, lock=True)
    seen = meta.execute(
        f"SELECT 1 FROM {PREFIX}sessions WHERE scope = ? AND id = ?{meta.d.for_update}", (sc.name, end.session)
    ).fetchone()
    if seen is not None:
        return stored
    (seq,) = meta.execute(
        f"SELECT COALESCE(MAX(seq), 0) + 1 FROM {PREFIX}sessions WHERE scope = ?", (sc.name,)
    ).fetchone()
    meta.execute(f"INSERT INTO {PREFIX}sessions VALUES (?, ?, ?)", (sc.name, end.session, seq))
    meta.execute(f"DELETE FROM {PREFIX}sessions WHERE scope = ? AND seq <= ?", (sc.name, seq - SESSIONS_KEPT))
    merge = end.merge.exclude(end.excluded)
    meta.release_beaten(sc, merge)
    stored = meta.save_knowledge(sc, stored.union(merge))
    meta.insert_conflicts(end.failures)
    if compact is not None:
        compact()
    meta.drop_partials_held(sc.name, stored.add_range(sc.rid, 1, clock()))
    return stored
