"""A server replica's snapshot, as a PostgreSQL or MariaDB peer hands it to
a clone (docs/design.md, "Snapshot initialization (clone)").

A :class:`Snapshot` is read inside one snapshot transaction of the source
(``REPEATABLE READ``), opened after the source's snapshot bound was read, so
the bound keeps the tick contract: every change at or below it is committed
and visible. It carries what a destination would hold after one complete
session from the source up to that bound:

- the rows whose local tick is at or below the bound (live rows and
  tombstones), each with the version and creation version the scope
  reports for it, its change time and its made-with record (``mw``);
- the knowledge a description of the source hands out: its stored knowledge
  plus its own ticks up to the bound, minus the foreign versions of rows
  above the bound (``sql/batch_frame.hidden_versions``), which the clone
  does not hold yet and receives in its first session;
- its forgotten knowledge and its made-with (partial) records.

Rows above the bound are left out, as a session would: their previous
state, superseded in the source's snapshot, is claimed by knowledge the way
a session up to the bound claims it, and their current state arrives in the
clone's first session with the source.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from peersync._engine.knowledge import Knowledge
from peersync._engine.model import TableSchema

from .constraints import TableConstraints

# How many rows a reader fetches at a time: memory stays a chunk, whatever the table.
CHUNK_ROWS = 5000

Row = Sequence[Any]
"""A tracking row: ``(*key, tick, urep, utick, crep, ctick, ctime, deleted,
arrived, mw)``, as every SQL adapter's tracking table holds it (see
docs/design.md, "Versions and tracking rows") in the source's terms: the key
in canonical wire form; ``tick`` the row's local tick as the scope reports
it; ``urep``/``utick`` its origin version when its last change arrived
through the scope (``arrived`` 1), else both None (the version is the
source's own ``tick``); ``crep``/``ctick`` its creation version when it
differs from the update version (``crep`` None for the source's own), else
both None (index 0 also stands for the source); ``ctime`` in ms; ``mw`` a partial record's id or None. Replica
indexes are the source's (:attr:`Snapshot.replicas`).

A local row is the short form of the commonest tracking row, a local change
of the source whose creation is its update version and that has no made-with
record: ``(*key, tick, ctime, deleted)``. A value row is the row's values in
canonical wire form, in column order."""


@dataclass(frozen=True)
class Snapshot:
    """One scope of a server replica as of its snapshot bound ``tick``.

    ``tables`` are the scope's tables in global names, parents first. For
    table ``i``, ``local(i)`` yields chunks of its tracking rows in the short
    form, ``tracking(i)`` chunks of the others (see :data:`Row`) and
    ``values(i)`` chunks of the values of every row the table holds in the
    snapshot (a plain scan; the clone leaves out those whose tracking row is
    not among the others); all
    read the same snapshot, only while its context is open, each once and
    to its end before the next is started. ``replicas`` maps the source's
    replica indexes to ids (the source itself is index 0 and None).
    ``partials`` are all the source's made-with records, by id (a row that
    arrived through another scope may point to one of that scope's).
    ``knowledge`` includes the source's own ticks up to ``tick``.
    ``constraints`` describe table ``i``'s indexes, foreign keys and
    defaults in global names, as far as a clone carries them (see
    :mod:`peersync._adapters.sql.constraints`); empty carries none."""

    scope: str
    rid: bytes
    tick: int
    fingerprint: str
    knowledge: Knowledge
    forgotten: Knowledge
    tables: tuple[TableSchema, ...]
    replicas: Mapping[int, bytes]
    partials: list[tuple[int, Knowledge]]
    local: Callable[[int], Iterator[list[Row]]]
    tracking: Callable[[int], Iterator[list[Row]]]
    values: Callable[[int], Iterator[list[Row]]]
    constraints: tuple[TableConstraints, ...] = ()


@runtime_checkable
class SnapshotSource(Protocol):
    """A peer that can hand out a :class:`Snapshot` (the server adapters)."""

    def snapshot_of(self, scope: str) -> AbstractContextManager[Snapshot]:
        """The scope's snapshot, valid while the context is open; raises as
        ``describe`` does (an unknown scope, lost triggers)."""
        ...
