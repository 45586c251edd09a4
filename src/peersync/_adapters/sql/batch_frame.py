"""The frame of one outgoing batch, as every SQL adapter builds it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from peersync._engine.knowledge import Knowledge
from peersync._engine.wire import pack_batch

from .meta import Meta, ScopeRef


@dataclass(frozen=True)
class Frame:
    """What a batch of scope ``sc`` is made with, read in the caller's snapshot.

    ``made_with``: the scope's knowledge up to local tick ``tick``. ``extras``:
    the partial records that add to it (rows applied from sessions not yet
    finished carry them); ``marks`` maps a record's id to its 1-based place in
    ``extras``, the mark its rows carry on the wire. ``replicas``: replica ids
    by this database's index (index 0, and gaps, stand for the scope's own)."""

    scope: str
    rid: bytes
    fingerprint: str
    tick: int
    made_with: Knowledge
    extras: list[Knowledge]
    marks: dict[int, int]
    replicas: list[bytes]

    def pack(self, after: int, last: int, tables: list[list[Any]]) -> bytes:
        """The batch of ticks ``(after, last]`` holding ``tables``."""
        return pack_batch(
            self.scope, self.rid, self.fingerprint, self.made_with, after + 1, last, last >= self.tick,
            self.replicas, tables, self.extras,
        )  # fmt: skip


def frame(meta: Meta, sc: ScopeRef, fingerprint: str, tick: int) -> Frame:
    """The frame of a batch of ``sc`` whose newest local tick is ``tick``."""
    meta.load_replicas()
    stored, _ = meta.stored_knowledge(sc.name)
    made_with = stored.add_range(sc.rid, 1, tick)
    marks: dict[int, int] = {}
    extras: list[Knowledge] = []
    for mw, record in meta.partials():
        extra = record.exclude(made_with)
        if not extra.is_empty():
            extras.append(extra)
            marks[mw] = len(extras)
    rids = meta.rep_rid
    replicas = [sc.rid] + [rids.get(i, sc.rid) for i in range(1, max(rids, default=0) + 1)]
    return Frame(sc.name, sc.rid, fingerprint, tick, made_with, extras, marks, replicas)
