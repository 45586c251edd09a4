"""Test helpers for users of peersync: wrap any peer to inject faults or to
record what crosses the wire.

>>> from peersync.testing import FaultyPeer  # doctest: +SKIP
>>> flaky = FaultyPeer(peersync.connect("b.db"), interrupt_after=1)  # doctest: +SKIP
>>> peersync.sync(a, flaky, "shop")  # raises TransportError after one batch  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from ._engine.errors import TransportError
from ._engine.knowledge import Knowledge
from ._engine.model import ApplyReport, Batch, ConflictHandler, ReplicaInfo, SessionEnd, TableSchema
from ._engine.peer import Peer, stream_of
from ._engine.wire import decode_batch

__all__ = ["FaultyPeer", "RecordingPeer", "Sent"]


class _Wrapper:
    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.url = peer.url

    def describe(self, scope: str) -> ReplicaInfo:
        return self.peer.describe(scope)

    def changes(self, scope: str, known: Knowledge, after: int, upto: int, *, max_rows: int, max_bytes: int) -> bytes:
        return self.peer.changes(scope, known, after, upto, max_rows=max_rows, max_bytes=max_bytes)

    def apply(self, scope: str, data: bytes, handler: ConflictHandler) -> ApplyReport:
        return self.peer.apply(scope, data, handler)

    def batches(
        self, scope: str, known: Knowledge, after: int, upto: int, *, max_rows: int, max_bytes: int
    ) -> Iterator[bytes]:
        # Through this wrapper's own ``changes``, so a subclass sees every batch.
        return stream_of(self, scope, known, after, upto, max_rows=max_rows, max_bytes=max_bytes)

    def finish(self, scope: str, end: SessionEnd) -> Knowledge:
        return self.peer.finish(scope, end)

    def schemas(self, scope: str) -> dict[str, TableSchema]:
        return self.peer.schemas(scope)

    def close(self) -> None:
        self.peer.close()


class FaultyPeer(_Wrapper):
    """A peer whose connection fails on cue, as a destination.

    - ``interrupt_after=n``: the apply after ``n`` successful ones raises
      :class:`~peersync.TransportError` before anything is applied;
    - ``lose_reply_after=n``: that apply commits, then the reply is lost
      (:class:`~peersync.TransportError`);
    - ``duplicate=True``: every batch is delivered twice;
    - ``truncate_after=n``: that batch arrives cut in half.
    """

    def __init__(
        self,
        peer: Peer,
        *,
        interrupt_after: int | None = None,
        lose_reply_after: int | None = None,
        duplicate: bool = False,
        truncate_after: int | None = None,
    ) -> None:
        super().__init__(peer)
        self.interrupt_after = interrupt_after
        self.lose_reply_after = lose_reply_after
        self.duplicate = duplicate
        self.truncate_after = truncate_after
        self.applied = 0

    def apply(self, scope: str, data: bytes, handler: ConflictHandler) -> ApplyReport:
        if self.interrupt_after is not None and self.applied >= self.interrupt_after:
            raise TransportError(f"injected: connection dropped before batch {self.applied + 1}")
        if self.truncate_after is not None and self.applied >= self.truncate_after:
            data = data[: len(data) // 2]
        report = self.peer.apply(scope, data, handler)
        if self.duplicate:
            report = self.peer.apply(scope, data, handler)
        self.applied += 1
        if self.lose_reply_after is not None and self.applied > self.lose_reply_after:
            raise TransportError(f"injected: reply to batch {self.applied} lost after commit")
        return report


@dataclass(frozen=True)
class Sent:
    """One batch as a destination received it, with its knowledge just before."""

    known_before: Knowledge
    batch: Batch
    size: int


@dataclass
class _Log:
    batches: list[Sent] = field(default_factory=list)


class RecordingPeer(_Wrapper):
    """A destination that records every batch it receives, decoded, together
    with its own knowledge just before applying it (to check, e.g., that no
    change is ever sent to a replica that already knows it)."""

    def __init__(self, peer: Peer) -> None:
        super().__init__(peer)
        self.received: list[Sent] = []

    def apply(self, scope: str, data: bytes, handler: ConflictHandler) -> ApplyReport:
        before = self.peer.describe(scope).knowledge
        self.received.append(Sent(before, decode_batch(data, self.peer.schemas(scope)), len(data)))
        return self.peer.apply(scope, data, handler)

    def redundant(self) -> list[tuple[str, Sent]]:
        """Changes received whose version the destination already knew."""
        out = []
        for s in self.received:
            for table, rows in s.batch.changes.items():
                for change in rows:
                    if change[2] in s.known_before:
                        out.append((table, s))
        return out
