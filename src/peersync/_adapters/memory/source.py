"""Enumeration: the batches an in-memory replica sends (SEMANTICS.md, "The
session", step 2 and 3).

Candidates are the rows whose local tick lies in ``after+1..upto``, in tick
order; each is reported with its origin version if its last change arrived
through this scope, otherwise as ``(this replica, local tick)``. A row whose
reported version the destination knows is not sent (the no-redundancy
promise), nor one whose local tick it knows (it holds this row as of that
tick or newer). Every batch carries the source's made-with knowledge, read
with the rows; a row applied here from a session that has not completed yet
carries, as an extra, the part of its source's knowledge this replica lacks,
so the destination does not take it for a conflict.
"""

from __future__ import annotations

from peersync._engine.knowledge import Knowledge
from peersync._engine.model import Batch, Change
from peersync._engine.wire import encode_batch, row_packer

from .state import Key, ScopeData, Table, Track
from .writes import Store

_ROW_OVERHEAD = 16  # a row's header fields, about


def read_batch(
    store: Store, sc: ScopeData, known: Knowledge, after: int, upto: int, max_rows: int, max_bytes: int
) -> tuple[bytes, int, bool]:
    """One encoded batch, its ``last`` tick and whether it is ``final``.

    At most ``max_rows`` rows; rows are added while the batch stays under
    ``max_bytes`` (a soft bound: the first row goes whatever its size).
    ``last`` is the tick of the last row taken when a bound stopped the
    batch, else ``upto``: every tick up to it was considered. ``final``: it
    reached this replica's newest tick, so ``made_with`` may be merged.
    """
    tick = store.clock
    made_with = sc.knowledge.add_range(sc.rid, 1, tick)
    candidates: list[tuple[int, Table, Key, Track]] = [
        (track.lt, store.tables[name], key, track)
        for name in sc.tables
        for key, track in store.tables[name].tracking.items()
        if after < track.lt <= upto
    ]
    candidates.sort(key=lambda c: c[0])
    pack = row_packer()
    changes: dict[str, list[Change]] = {}
    marks: dict[str, list[int]] = {}
    extras: list[Knowledge] = []
    size = taken = 0
    last = prev = upto
    for lt, t, key, track in candidates:
        version = track.version(sc.name, sc.rid)
        if version in known or known.contains(sc.rid, lt):
            continue
        values = key if track.deleted else t.rows[key]
        grown = len(pack(list(values))) + _ROW_OVERHEAD
        if taken and (taken >= max_rows or size + grown > max_bytes):
            last = prev
            break
        creation = track.creation_in(sc.name, sc.rid)
        changes.setdefault(t.schema.name, []).append((lt, track.deleted, version, creation, track.time, values))
        marks.setdefault(t.schema.name, []).append(_mark(track.record(sc.name), made_with, extras))
        size += grown
        taken += 1
        prev = lt
    final = last >= tick
    schemas = {n: store.tables[n].schema for n in sc.tables}
    batch = Batch(
        sc.name, sc.rid, sc.fingerprint, made_with, after + 1, last, final, changes, tuple(extras),
        {n: m for n, m in marks.items() if any(m)},
    )  # fmt: skip
    return encode_batch(batch, schemas), last, final


def _mark(record: Knowledge | None, made_with: Knowledge, extras: list[Knowledge]) -> int:
    """The 1-based index in ``extras`` of what ``record`` knows beyond
    ``made_with`` (added if new), or 0 when it knows nothing more."""
    if record is None:
        return 0
    extra = record.exclude(made_with)
    if extra.is_empty():
        return 0
    if extra not in extras:
        extras.append(extra)
    return extras.index(extra) + 1
