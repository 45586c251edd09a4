"""Pending changes on PostgreSQL: incoming changes an apply kept out of
knowledge (a failed row, a deferred conflict), recorded so that they stay
out whatever knowledge is merged later (promise 8 of SEMANTICS.md), and
forgotten once a batch writes or resolves their row with a version that
holds or beats theirs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg

from peersync._adapters.sql.meta import PREFIX, Meta, dumps
from peersync._engine.knowledge import Knowledge, Version
from peersync._engine.model import Value

# A row a batch settled: its table id, key, incoming version and the
# knowledge it was made with (the batch's, with the row's extra part).
Settled = tuple[int, tuple[Value, ...], Version, Knowledge]
# A row kept out: its table id, key, incoming version and the source's tick of it.
Kept = tuple[int, tuple[Value, ...], Version, int]


def release(conn: psycopg.Connection[Any], scope: int, settled: Iterable[Settled]) -> None:
    """Forget the pending changes of scope index ``scope`` whose row was
    ``settled`` with their version or one made knowing it."""
    pend = conn.execute(
        f"SELECT p.tbl, p.key, r.replica_id, p.vtick, p.srep, p.stick FROM {PREFIX}pending AS p"
        f" JOIN {PREFIX}replicas AS r ON r.idx = p.vrep WHERE p.scope = %s",
        (scope,),
    ).fetchall()
    if not pend:
        return
    done: dict[tuple[int, str], list[tuple[Version, Knowledge]]] = {}
    for tid, key, version, made_with in settled:
        done.setdefault((tid, dumps(list(key))), []).append((version, made_with))
    for tbl, key, vrid, vtick, srep, stick in pend:
        v = (bytes(vrid), int(vtick))
        if any(v == version or v in made_with for version, made_with in done.get((tbl, key), [])):
            conn.execute(
                f"DELETE FROM {PREFIX}pending WHERE scope = %s AND srep = %s AND stick = %s", (scope, srep, stick)
            )


def keep(conn: psycopg.Connection[Any], meta: Meta, scope: int, source: bytes, kept: Iterable[Kept]) -> Knowledge:
    """Record the ``kept`` changes from replica ``source`` as pending; returns
    their versions and the source's ticks of them."""
    versions: list[Version] = []
    for tid, key, version, lt in kept:
        conn.execute(
            f"INSERT INTO {PREFIX}pending (scope, tbl, vrep, vtick, srep, stick, key)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (scope, tid, meta.rep_index(version[0]), version[1], meta.rep_index(source), lt, dumps(list(key))),
        )
        versions += (version, (source, lt))
    return Knowledge.from_versions(versions)
