"""The one small interface every peer implements: SQLite now; PostgreSQL,
MySQL/MariaDB and a remote HTTP peer behind the same methods later.

The session engine (``_session.py``) only ever talks to a peer through these
methods, so adding a database or a transport never touches the engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from .knowledge import Knowledge
from .model import ApplyReport, Conflict, ConflictHandler, ReplicaInfo, TableSchema


@runtime_checkable
class Peer(Protocol):
    """A replica store that can describe, enumerate and apply changes of a scope."""

    url: str

    def describe(self, scope: str) -> ReplicaInfo:
        """Knowledge, snapshot tick and shape of ``scope``, read consistently.

        Raises :class:`~peersync.ScopeError` for an unknown scope and
        :class:`~peersync.SchemaMismatch` when a table changed since provisioning.
        """
        ...

    def changes(self, scope: str, known: Knowledge, after: int, upto: int, *, max_rows: int, max_bytes: int) -> bytes:
        """One encoded batch: rows with local tick in ``after+1..upto`` that
        ``known`` lacks, in tick order, at most ``max_rows`` of them (rows
        skipped as known do not count) and at most about ``max_bytes`` (a
        single larger row travels alone). The batch's ``last`` tick is exact:
        every tick up to it was considered, none after it."""
        ...

    def apply(self, scope: str, data: bytes, handler: ConflictHandler) -> ApplyReport:
        """Validate and apply one encoded batch in one transaction, together
        with the knowledge it teaches. Idempotent: applying it twice is a no-op
        the second time. Raises :class:`~peersync.ProtocolError` and changes
        nothing when the batch is malformed or belongs to another scope."""
        ...

    def complete(self, scope: str, source_knowledge: Knowledge, excluded: Knowledge) -> Knowledge:
        """Merge what the source knew, minus ``excluded``, at the end of a session."""
        ...

    def log_conflicts(self, scope: str, conflicts: Sequence[Conflict]) -> None:
        """Record conflicts decided outside :meth:`apply` (persistent errors)."""
        ...

    def schemas(self, scope: str) -> dict[str, TableSchema]: ...

    def close(self) -> None: ...
