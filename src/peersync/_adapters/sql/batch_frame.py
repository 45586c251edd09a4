"""The frame of one outgoing batch, as every SQL adapter builds it."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from peersync._engine.knowledge import Knowledge
from peersync._engine.wire import PackedRows, pack_batch, row_packer

from .meta import Meta, ScopeRef


@dataclass(frozen=True)
class Frame:
    """What a batch of scope ``sc`` is made with, read in the caller's snapshot.

    ``made_with``: the scope's knowledge up to local tick ``tick``. ``extras``:
    the partial records that add to it (rows applied from sessions not yet
    finished carry them); ``marks`` maps a record's id to its 1-based place in
    ``extras``, the mark its rows carry on the wire. ``replicas``: replica ids
    by this database's index (index 0, and gaps, stand for the scope's own).
    ``wire_names``: the global name of each table whose local name differs."""

    scope: str
    rid: bytes
    fingerprint: str
    tick: int
    made_with: Knowledge
    extras: list[Knowledge]
    marks: dict[int, int]
    replicas: list[bytes]
    wire_names: Mapping[str, str] = field(default_factory=dict)

    def pack(self, after: int, last: int, tables: list[list[Any]]) -> bytes:
        """The batch of ticks ``(after, last]`` holding ``tables`` (local
        names first in each entry; the batch names them globally)."""
        if self.wire_names:
            tables = [[self.wire_names.get(t[0], t[0]), *t[1:]] for t in tables]
        return pack_batch(
            self.scope, self.rid, self.fingerprint, self.made_with, after + 1, last, last >= self.tick,
            self.replicas, tables, self.extras,
        )  # fmt: skip


def hidden_versions(meta: Meta, rows: Iterable[Sequence[Any]]) -> Knowledge:
    """The foreign versions (update and creation) of rows not enumerable yet.

    ``rows`` are ``(urep, utick, crep, ctick)`` of the scope's rows whose
    local tick lies above the snapshot bound (PostgreSQL: a local writer's
    floor holds the bound down; MariaDB: the tick is not sealed yet). An
    apply commits such rows together with knowledge of their versions, so
    the scope's stored knowledge names versions whose rows no batch up to
    the bound carries: knowledge handed out as made-with (merged by the
    destination when a batch is final) must leave them out, or the
    destination claims rows it never received and filters them out as known
    for good. A description keeps them (it is this replica's knowledge as a
    destination, never merged elsewhere: docs/design.md, "The tick
    contract"). Replica index 0 (and NULL) is this replica: its ticks above
    the bound are not claimed anyway. Needs :meth:`Meta.load_replicas` first."""
    versions = []
    for urep, utick, crep, ctick in rows:
        for rep, tick in ((urep, utick), (crep, ctick)):
            if rep and tick is not None and int(rep) in meta.rep_rid:
                versions.append((meta.rep_rid[int(rep)], int(tick)))
    return Knowledge.from_versions(versions)


def frame(
    meta: Meta,
    sc: ScopeRef,
    fingerprint: str,
    tick: int,
    wire_names: Mapping[str, str] | None = None,
    hidden: Knowledge | None = None,
) -> Frame:
    """The frame of a batch of ``sc`` whose newest local tick is ``tick``;
    ``wire_names`` maps local table names to global ones where they differ;
    ``hidden``: versions of rows above ``tick`` (see :func:`hidden_versions`)."""
    meta.load_replicas()
    stored, _ = meta.stored_knowledge(sc.name)
    made_with = stored.add_range(sc.rid, 1, tick)
    if hidden is not None:
        made_with = made_with.exclude(hidden)
    marks: dict[int, int] = {}
    extras: list[Knowledge] = []
    for mw, record in meta.partials():
        extra = record.exclude(made_with)
        if not extra.is_empty():
            extras.append(extra)
            marks[mw] = len(extras)
    rids = meta.rep_rid
    replicas = [sc.rid] + [rids.get(i, sc.rid) for i in range(1, max(rids, default=0) + 1)]
    return Frame(sc.name, sc.rid, fingerprint, tick, made_with, extras, marks, replicas, wire_names or {})


def _tagged(i: int, rows: Iterable[Sequence[Any]]) -> Iterator[tuple[int, int, Sequence[Any]]]:
    """Rows of table ``i`` keyed for a merge by their tick offset."""
    for row in rows:
        yield row[0], i, row


def take_rows(
    readers: Sequence[tuple[str, int, Iterable[Sequence[Any]]]], max_rows: int, room: int
) -> tuple[list[list[Any]], int | None]:
    """Wire rows of several tables, each table's ``(name, base time, rows)``
    in tick order (a row's first field is its tick offset), merged in tick
    order and packed up to ``max_rows`` rows and ``room`` bytes (the first
    row goes whatever its size). Returns the batch's tables (those with rows)
    and the tick offset of the last row taken, or None if every row was taken."""
    pack = row_packer()
    parts: list[list[bytes]] = [[] for _ in readers]
    # What a table's first row adds to the batch: its entry's name and framing.
    entry = [len(name) + 16 for name, _, _ in readers]
    size = 0
    last: int | None = None
    if len(readers) == 1:
        last = _take_one(readers[0][2], parts[0], pack, entry[0], max_rows, room)
    else:
        stream = ((i, row) for _, i, row in heapq.merge(*(_tagged(i, rows) for i, (_, _, rows) in enumerate(readers))))
        for n, (i, row) in enumerate(stream):  # n: rows taken so far
            data = pack(row)
            grown = len(data) if parts[i] else len(data) + entry[i]
            if n and (n >= max_rows or size + grown > room):
                break
            parts[i].append(data)
            size += grown
            last = row[0]
        else:
            last = None
    tables = [[name, base, PackedRows(len(p), p)] for (name, base, _), p in zip(readers, parts, strict=True) if p]
    return tables, last


def _take_one(
    rows: Iterable[Sequence[Any]], part: list[bytes], pack: Callable[[Sequence[Any]], bytes], entry: int,
    max_rows: int, room: int,
) -> int | None:  # fmt: skip
    """:func:`take_rows` for a single table (most batches): the same rule, with
    no merge to make, in the loop that runs once per row of an initial sync."""
    append = part.append
    size = 0
    last = None
    for row in rows:
        data = pack(row)
        if part:
            size += len(data)
            if len(part) >= max_rows or size > room:
                return last
        else:
            size = len(data) + entry  # the first row goes whatever its size
        append(data)
        last = row[0]
    return None
