"""Plain data exchanged between the engine, the adapters, the CLI and users."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .knowledge import Knowledge, Version
from .types import Column

Value = Any  # a column value: None, int, float, str, bytes or RawText


@dataclass(frozen=True, slots=True)
class RawText:
    """A TEXT value whose bytes are not valid UTF-8.

    SQLite stores whatever bytes a program gives a TEXT value (the C API,
    ``CAST(X'FF41' AS TEXT)``); Python's ``str`` cannot hold them. peersync
    carries such a value as its bytes and writes it back as TEXT with the
    same bytes, so it syncs exactly. Conflict callbacks and the conflict log
    show it as ``RawText``; a merged row may contain it.
    """

    data: bytes


class Direction(enum.StrEnum):
    """Which way changes move in :func:`peersync.sync` between peers A and B."""

    PUSH = "push"  # A's changes to B
    PULL = "pull"  # B's changes to A
    BOTH = "both"  # push, then pull


class ConflictType(enum.StrEnum):
    """What collided, named ``local/remote`` from the destination's side."""

    UPDATE_UPDATE = "update/update"
    UPDATE_DELETE = "update/delete"  # the destination updated, the source deleted
    DELETE_UPDATE = "delete/update"  # the destination deleted, the source updated
    INSERT_INSERT = "insert/insert"  # the same key was created on both replicas
    DELETE_DELETE = "delete/delete"
    ERROR = "error"  # the change could not be applied (a constraint, a type)


class Policy(enum.StrEnum):
    """Built-in conflict policies. Only ``LAST_WRITER_WINS`` is deterministic
    across replicas whatever the order changes arrive in."""

    LAST_WRITER_WINS = "last-writer-wins"
    SOURCE_WINS = "source-wins"
    DESTINATION_WINS = "destination-wins"


class Outcome(enum.StrEnum):
    """How a conflict ended."""

    SOURCE = "source"  # the incoming change was applied
    DESTINATION = "destination"  # the destination kept its row
    MERGE = "merge"  # a merged row was written as a new local change
    DEFER = "defer"  # nothing applied; the change comes again next session
    FAILED = "failed"  # the change could not be applied (errors only)


@dataclass(frozen=True)
class Resolution:
    """What a conflict callback returns: an outcome, and the row for ``MERGE``."""

    outcome: Outcome
    row: dict[str, Value] | None = None

    def __post_init__(self) -> None:
        if (self.outcome is Outcome.MERGE) != (self.row is not None):
            raise ValueError("a merged row goes with Outcome.MERGE, and only with it")
        if self.outcome is Outcome.FAILED:
            raise ValueError("FAILED is recorded by peersync, not chosen by a policy")


@dataclass(frozen=True)
class Conflict:
    """One conflict, as handed to a callback and as recorded in the log.

    ``local_row`` / ``remote_row`` are ``None`` for a deleted row. Versions
    are ``(replica_id, tick)``; times are milliseconds since the epoch.
    """

    scope: str
    table: str
    key: tuple[Value, ...]
    type: ConflictType
    local_row: dict[str, Value] | None
    remote_row: dict[str, Value] | None
    local_version: Version | None
    remote_version: Version
    local_time: int | None
    remote_time: int
    policy: str = ""
    outcome: Outcome | None = None
    detail: str = ""
    id: int | None = None
    logged_at: int | None = None

    def to_dict(self) -> dict[str, Any]:
        def ver(v: Version | None) -> str | None:
            return None if v is None else f"{v[0].hex()}@{v[1]}"

        return {
            "id": self.id,
            "scope": self.scope,
            "table": self.table,
            "key": list(self.key),
            "type": self.type.value,
            "policy": self.policy,
            "outcome": self.outcome.value if self.outcome else None,
            "local_row": self.local_row,
            "remote_row": self.remote_row,
            "local_version": ver(self.local_version),
            "remote_version": ver(self.remote_version),
            "local_time": self.local_time,
            "remote_time": self.remote_time,
            "detail": self.detail,
            "logged_at": self.logged_at,
        }


ConflictCallback = Callable[[Conflict], "Resolution | Outcome"]
ConflictHandler = Policy | ConflictCallback


@dataclass(frozen=True)
class TableSchema:
    """A synced table's shape: columns in table order and key columns, with
    two views of each column's type.

    ``specs`` describes each column in the engine's vocabulary (canonical
    type, nullability, declared sizes; see :mod:`peersync._engine.types`):
    it is what peers compare, through the fingerprint. ``types`` is each
    column's storage class in the adapter's own terms (SQLite: its affinity,
    one of integer, real, text, blob, numeric), for the adapter alone and
    never compared across databases. ``specs`` may be empty only for a
    table known by name (nothing can be fingerprinted from it); otherwise
    it names the columns in order.
    """

    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    types: tuple[str, ...]
    specs: tuple[Column, ...] = ()

    def __post_init__(self) -> None:
        if self.specs and tuple(c.name for c in self.specs) != self.columns:
            raise ValueError(f"table {self.name}: column descriptions do not name its columns in order")

    @property
    def key_positions(self) -> tuple[int, ...]:
        return tuple(self.columns.index(k) for k in self.key)


@dataclass(frozen=True)
class ScopeState:
    """A scope's replica in one database: its id, the tick up to which its
    own changes are committed, its knowledge (own ticks included), what it
    forgot (tombstones cleaned up) and its shape's fingerprint."""

    scope: str
    replica_id: bytes
    tick: int
    knowledge: Knowledge
    forgotten: Knowledge
    fingerprint: str


@dataclass(frozen=True)
class ReplicaInfo(ScopeState):
    """What a peer says about one scope at the start of a session.

    ``knowledge`` includes the replica's own ticks up to ``tick``; ``tick`` is
    the snapshot bound: a session enumerates nothing above it.

    ``knowledge`` is what the replica *holds*: every version its committed
    rows hold or beat, also those of rows committed above ``tick`` (a
    server's apply may commit there). It is the filter a source uses when
    this replica is the destination, so it must name them all, or they are
    sent again. It is not what the replica *vouches for* as a source: no
    session merges it into another replica. A destination merges a source's
    knowledge only as the made-with knowledge of a final batch, which keeps
    below the bound (docs/design.md, "The tick contract").
    """

    tables: tuple[TableSchema, ...]


# One change inside a batch. Tuples keep the hot path cheap:
# (local_tick, deleted, version, creation, change_time_ms, values)
# values hold every column in table order for a live row, the key for a tombstone.
Change = tuple[int, bool, Version, Version, int, tuple[Value, ...]]


@dataclass(frozen=True)
class BatchHead:
    """What every batch says of itself: scope ``scope`` of shape
    ``fingerprint``, from replica ``source``, covering its ticks
    ``first..last``, made with knowledge ``made_with``.

    ``final`` means ``last`` is the source's newest tick in the snapshot that
    ``made_with`` was read in: every row the source held then was sent in this
    session or known to the destination, so ``made_with`` may be merged.
    """

    scope: str
    source: bytes
    fingerprint: str
    made_with: Knowledge
    first: int
    last: int
    final: bool


@dataclass(frozen=True)
class Batch(BatchHead):
    """Changes of one scope from one source, covering source ticks ``first..last``
    (see :class:`BatchHead`).

    The destination learns the source's own ticks in that range, the versions
    it received, and (once ``final`` and the session completes) the rest of
    ``made_with``.
    """

    changes: dict[str, list[Change]]
    # Knowledge some rows were made with beyond ``made_with``, and for each
    # table the index (1-based; 0 for none) of each row's entry in ``extras``.
    extras: tuple[Knowledge, ...] = ()
    extra_of: dict[str, list[int]] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(len(c) for c in self.changes.values())


@dataclass
class ApplyReport:
    """What applying one batch did at the destination.

    ``failed`` holds an ``ERROR`` conflict per row that could not be applied;
    ``excluded`` the versions kept out of learned knowledge (failed and
    deferred rows) so they come again; ``knowledge`` the destination's
    knowledge after the batch; ``last``/``final``/``made_with`` echo the batch.
    """

    received: int = 0
    applied: int = 0
    skipped_known: int = 0
    conflicts: int = 0
    deferred: int = 0
    failed: list[Conflict] = field(default_factory=list)
    excluded: Knowledge = field(default_factory=Knowledge.empty)
    knowledge: Knowledge = field(default_factory=Knowledge.empty)
    last: int = 0
    final: bool = False
    made_with: Knowledge = field(default_factory=Knowledge.empty)


@dataclass(frozen=True)
class RepairReport:
    """What :meth:`Database.repair` or :meth:`Database.migrate` did.

    ``retracked``: tables whose triggers were (re)created. ``untracked``: those
    of them that had lost their triggers: rows inserted or deleted meanwhile
    are now local changes (counted in ``inserted`` and ``deleted``), but rows
    *updated* meanwhile cannot be told from unchanged ones; ``repair(scope,
    restamp=True)`` makes every live row a new local change (``restamped``).
    ``migrated``: the scope's shape (fingerprint) was updated.
    """

    scope: str
    migrated: bool
    retracked: tuple[str, ...]
    untracked: tuple[str, ...]
    inserted: int
    deleted: int
    restamped: int


@dataclass(frozen=True)
class SessionEnd:
    """The end of a one-way session, sent to the destination in one call.

    ``session`` names the session (32 hex digits, random): a retried call with
    the same name changes nothing. ``merge`` is the source's knowledge to merge
    (empty when the session kept a row out or never reached the source's final
    batch), ``excluded`` what must stay out of it (rows that failed or were
    deferred in the last pass), ``failures`` the ``ERROR`` conflicts of rows
    that still failed, recorded in the destination's conflict log.
    """

    session: str
    merge: Knowledge
    excluded: Knowledge
    failures: tuple[Conflict, ...] = ()


@dataclass(frozen=True)
class Status(ScopeState):
    """What :func:`peersync.status` reports for one scope of one database."""

    tables: tuple[str, ...]
    tracked_rows: int
    tombstones: int
    conflicts: int
    # Rows kept out of knowledge until they apply: failed (a constraint) or deferred.
    pending: int = 0
    # This database's names where they differ from the scope's global ones (``tables``),
    # by global table name: {"table": local name, "columns": {global: local}}.
    names: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "replica_id": self.replica_id.hex(),
            "tick": self.tick,
            "knowledge": self.knowledge.to_dict(),
            "knowledge_text": self.knowledge.describe(),
            "knowledge_bytes": len(self.knowledge.to_bytes()),
            "forgotten": self.forgotten.to_dict(),
            "fingerprint": self.fingerprint,
            "tables": list(self.tables),
            "tracked_rows": self.tracked_rows,
            "tombstones": self.tombstones,
            "conflicts": self.conflicts,
            "pending": self.pending,
            "names": self.names,
        }
