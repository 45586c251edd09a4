"""The final batches a served database applied, kept in its own metadata so
that ``finish`` can be vetted by any server process, before or after a
restart (docs/protocol.md, "Finish merges only what a final batch
justified"; the rule itself is in ``_transports/http/finals.py``).

One row per final batch: its source replica, ``last`` tick and made-with
knowledge. A scope keeps the newest :data:`FINALS_KEPT`; a record the scope's
knowledge already contains can vouch for nothing new and is dropped when the
next one is written. The table is made on first use (databases provisioned
before it existed have none).
"""

from __future__ import annotations

from peersync._engine.errors import ScopeError
from peersync._engine.knowledge import Knowledge

from .meta import PREFIX, Meta

FINALS = PREFIX + "finals"
FINALS_KEPT = 256  # final batches remembered per scope

Final = tuple[bytes, int, Knowledge]  # source replica, last tick, made-with knowledge


def finals_ddl(meta: Meta) -> str:
    """The statement that makes the table, in ``meta``'s dialect."""
    blob = meta.d.blob_type
    return (
        f"CREATE TABLE IF NOT EXISTS {FINALS} (scope VARCHAR(255) NOT NULL, seq BIGINT NOT NULL,"
        f" source {blob} NOT NULL, last BIGINT NOT NULL, made_with {blob} NOT NULL, PRIMARY KEY (scope, seq))"
    )


def _require(meta: Meta, scope: str, where: str, lock: str = "") -> None:
    """:class:`~peersync.ScopeError` unless ``scope`` exists in the database
    at ``where`` (none does once its last scope was deprovisioned and the
    metadata tables went with it); ``lock``: with its row locked."""
    if (
        not meta.has_meta()
        or meta.execute(f"SELECT 1 FROM {PREFIX}scopes WHERE name = ?{lock}", (scope,)).fetchone() is None
    ):
        raise ScopeError(f"unknown scope {scope!r} in {where}")


def kept_finals(meta: Meta, scope: str, where: str) -> list[Final]:
    """``scope``'s recorded final batches, newest first (none without the
    table); :class:`~peersync.ScopeError` for an unknown scope."""
    _require(meta, scope, where)
    if meta.execute(meta.d.table_exists, (FINALS,)).fetchone() is None:
        return []
    rows = meta.execute(
        f"SELECT source, last, made_with FROM {FINALS} WHERE scope = ? ORDER BY seq DESC", (scope,)
    ).fetchall()
    return [(bytes(s), int(last), Knowledge.from_bytes(bytes(k))) for s, last, k in rows]


def keep_final(meta: Meta, scope: str, final: Final, known: Knowledge, where: str, *, make: bool = True) -> None:
    """Record ``final`` for ``scope`` in the caller's write transaction,
    dropping the records ``known`` (the scope's knowledge now) contains and
    all but the newest :data:`FINALS_KEPT`. The scope's row is locked first,
    so two server processes recording at once take turns
    (:class:`~peersync.ScopeError` if there is none); then, with ``make``,
    the table is made if absent (after the lock: PostgreSQL fails one of two
    concurrent ``CREATE TABLE IF NOT EXISTS``). MariaDB passes False and
    runs :func:`finals_ddl` before its transaction, having checked the scope."""
    _require(meta, scope, where, meta.d.for_update)
    if make:
        meta.execute(finals_ddl(meta))
    for seq, blob in meta.execute(f"SELECT seq, made_with FROM {FINALS} WHERE scope = ?", (scope,)).fetchall():
        if known.contains_knowledge(Knowledge.from_bytes(bytes(blob))):
            meta.execute(f"DELETE FROM {FINALS} WHERE scope = ? AND seq = ?", (scope, seq))
    (seq,) = meta.execute(f"SELECT COALESCE(MAX(seq), 0) + 1 FROM {FINALS} WHERE scope = ?", (scope,)).fetchone()
    source, last, made_with = final
    meta.execute(f"INSERT INTO {FINALS} VALUES (?, ?, ?, ?, ?)", (scope, seq, source, last, made_with.to_bytes()))
    meta.execute(f"DELETE FROM {FINALS} WHERE scope = ? AND seq <= ?", (scope, int(seq) - FINALS_KEPT))


def drop_finals(meta: Meta, scope: str) -> None:
    """Forget ``scope``'s records (deprovisioning), in the caller's transaction."""
    if meta.execute(meta.d.table_exists, (FINALS,)).fetchone() is not None:
        meta.execute(f"DELETE FROM {FINALS} WHERE scope = ?", (scope,))
