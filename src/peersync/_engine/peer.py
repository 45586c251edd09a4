"""The Peer contract: the only way the session engine (``session.py``) talks
to a replica store. SQLite, PostgreSQL, MariaDB, the in-memory reference peer
and a remote peer over HTTP all implement it, so adding a database or a
transport never touches the engine.

Every argument and result is plain data with a strict codec in
:mod:`peersync._engine.codec`, so each call can cross a wire. Errors are
:class:`~peersync.SyncError` subclasses, each with a stable ``code`` that a
remote side turns back into the same class.

The tick contract (docs/design.md, "The tick contract"): a peer stamps each local change
with a tick from one counter per database. A tick a peer reports as its
snapshot bound (``ReplicaInfo.tick``), and every ``last`` tick of a batch, is
a tick *at or below which every change is committed and visible*: nothing
committed later may carry a tick at or below it. A database whose writers
take ticks in one order and commit in another (PostgreSQL, MariaDB) keeps
this by reporting the highest tick below every transaction still in flight,
not the highest tick taken. Enumeration is exact up to that bound, so a late
commit is never skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, Self, runtime_checkable

from .knowledge import Knowledge
from .model import ApplyReport, ConflictHandler, ReplicaInfo, SessionEnd, TableSchema
from .wire import batch_end


@runtime_checkable
class Peer(Protocol):
    """A replica store that can describe, enumerate and apply changes of a scope."""

    url: str

    def describe(self, scope: str) -> ReplicaInfo:
        """Knowledge, snapshot bound and shape of ``scope``, read in one snapshot.

        Read-only: never writes (compaction happens in :meth:`finish` and in
        maintenance calls). ``tick`` keeps the tick contract above: every
        change at or below it is committed, so enumerating up to it misses none.
        ``knowledge`` is all this replica holds, rows above ``tick`` included:
        as a destination's filter it must be whole, and it is never merged
        elsewhere (see :class:`~peersync._engine.model.ReplicaInfo`).

        Raises :class:`~peersync.ScopeError` for an unknown scope,
        :class:`~peersync.SchemaMismatch` when a table changed since
        provisioning and :class:`~peersync.RepairNeeded` when the tracking
        cannot be trusted (a copied file, lost triggers).
        """
        ...

    def schemas(self, scope: str) -> dict[str, TableSchema]:
        """The shape of each table of ``scope``, by table name. Read-only."""
        ...

    def changes(self, scope: str, known: Knowledge, after: int, upto: int, *, max_rows: int, max_bytes: int) -> bytes:
        """One encoded batch: the rows with a local tick in ``after+1..upto``
        whose versions ``known`` lacks, in tick order. Read-only, and
        repeatable: the same call on an unchanged store returns the same rows.

        Bounds: at most ``max_rows`` rows (rows skipped as known do not count).
        ``max_bytes`` is a soft bound: rows are added while the batch stays
        under it, and a single larger row travels alone in its own batch.
        ``upto`` must keep the tick contract (a bound the source reported).

        The batch's ``last`` tick is exact: every tick in ``after+1..last``
        was considered (sent or known), none after it; ``final`` says that
        ``last`` reached the source's snapshot bound of the batch's own read,
        so its ``made_with`` knowledge may be merged at the session's end.
        """
        ...

    def batches(
        self, scope: str, known: Knowledge, after: int, upto: int, *, max_rows: int, max_bytes: int
    ) -> Iterator[bytes]:
        """A pass as a stream: the batches :meth:`changes` would return one
        after the other (each starting after the previous one's ``last``), up
        to a ``final`` batch or one whose ``last`` reaches ``upto``.

        Same bounds per batch as :meth:`changes`. A remote peer sends the
        whole pass in one response, so a session costs about one round trip
        per batch. The consumer may stop early; the stream then ends cleanly.
        """
        ...

    def apply(self, scope: str, data: bytes, policy: ConflictHandler) -> ApplyReport:
        """Validate and apply one encoded batch in one transaction, together
        with the knowledge it teaches.

        ``policy`` is a :class:`~peersync.Policy` (data, which crosses a
        wire) or, for a store in this very process only, a Python callback;
        a remote peer refuses a callback with
        :class:`~peersync.ConfigurationError` before anything is written.

        Idempotent: a batch applied twice is a no-op the second time (its
        versions are known). A local write that committed concurrently is
        never overwritten: it becomes a conflict. Raises
        :class:`~peersync.ProtocolError` and changes nothing when the batch is
        malformed, truncated, forged or of another scope, and
        :class:`~peersync.SchemaMismatch` when its shape differs.
        """
        ...

    def finish(self, scope: str, end: SessionEnd) -> Knowledge:
        """End a one-way session in one transaction: merge ``end.merge``
        minus ``end.excluded`` (and minus every change still pending here)
        into this replica's knowledge, record ``end.failures`` in the
        conflict log, and do due maintenance (compaction).

        Idempotent: a retried call with the same ``end.session`` changes
        nothing and logs nothing twice; it returns the knowledge as it is now.
        Returns this replica's knowledge after the call.
        """
        ...

    def close(self) -> None:
        """Release the connection; the peer is unusable afterwards."""
        ...


class _Changes(Protocol):
    def changes(
        self, scope: str, known: Knowledge, after: int, upto: int, *, max_rows: int, max_bytes: int
    ) -> bytes: ...


def stream_of(
    peer: _Changes, scope: str, known: Knowledge, after: int, upto: int, *, max_rows: int, max_bytes: int
) -> Iterator[bytes]:
    """:meth:`Peer.batches` in terms of :meth:`Peer.changes`: for peers (and
    test wrappers) that produce one batch at a time."""
    while True:
        data = peer.changes(scope, known, after, upto, max_rows=max_rows, max_bytes=max_bytes)
        yield data
        last, final = batch_end(data)
        if final or last >= upto:
            return
        after = last


class Handle:
    """Mixed into every peer class: the context manager that closes it, and
    its ``repr``, the class and URL (``MemoryPeer('memory://a')``)."""

    url: str

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


class BatchPeer(Handle):
    """Mixed into a peer that reads one batch at a time (``_batch``): its
    :meth:`Peer.changes` and :meth:`Peer.batches`."""

    def _batch(
        self, scope: str, known: Knowledge, after: int, upto: int, max_rows: int, max_bytes: int
    ) -> tuple[bytes, int, bool]:
        """One batch, with its ``last`` tick and whether it is final."""
        raise NotImplementedError

    def changes(self, scope: str, known: Knowledge, after: int, upto: int, *, max_rows: int, max_bytes: int) -> bytes:
        return self._batch(scope, known, after, upto, max_rows, max_bytes)[0]

    def batches(
        self, scope: str, known: Knowledge, after: int, upto: int, *, max_rows: int, max_bytes: int
    ) -> Iterator[bytes]:
        return stream_of(self, scope, known, after, upto, max_rows=max_rows, max_bytes=max_bytes)
