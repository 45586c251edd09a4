"""Bad input changes nothing: a batch that is malformed, forged or inconsistent with the
source's own knowledge is refused with ProtocolError before anything is written, and the
destination's data and knowledge stay as they were (docs/design.md, "Promises": bad input
changes nothing; "The session", step 3)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest

import peersync
from peersync import Knowledge, Policy
from peersync._engine.wire import decode_batch

from ..helpers import connect_all, rows, write

MakeDb = Callable[..., Path]


def first_batch(src: peersync.Database, scope: str) -> list[Any]:
    """The source's first batch for an empty destination, decoded to its envelope list."""
    tick = src.describe(scope).tick
    data = src.changes(scope, Knowledge.empty(), 0, tick, max_rows=100, max_bytes=1 << 20)
    env: list[Any] = msgpack.unpackb(data, raw=False)
    return env


def test_batch_claiming_source_ticks_beyond_its_own_knowledge_is_refused(make_db: MakeDb) -> None:
    """A batch whose tick range ``first..last`` reaches past the source's own ticks in its
    made-with knowledge is refused and changes nothing. Accepted, it would make the
    destination claim a million future ticks of the source, whose later changes it would
    then never receive (lost updates)."""
    pa, pb = make_db("a"), make_db("b")
    a, b = connect_all(pa, pb)
    try:
        for d in (a, b):
            d.provision("s", ["item"])
        write(pa, "INSERT INTO item VALUES (1, 'x', 1, 1.0)")
        env = first_batch(a, "s")
        env[7], env[8] = 1_000_000, False  # last far beyond any tick the source made; not final
        before = b.describe("s").knowledge
        with pytest.raises(peersync.ProtocolError):
            b.apply("s", msgpack.packb(env, use_bin_type=True), Policy.LAST_WRITER_WINS)
        assert b.describe("s").knowledge == before
    finally:
        a.close()
        b.close()


def test_batch_whose_change_time_overflows_int64_is_refused_and_blocks_nothing(make_db: MakeDb) -> None:
    """A batch whose base time plus a row's time offset overflows a 64-bit integer is refused.
    Accepted, the row would be stored with a REAL change time, every later batch from this
    destination would carry a float base time, and its peers would refuse them all: one bad
    batch would block the replica's outgoing syncs for good. Here the destination still
    syncs with a third peer afterwards, and the peers converge."""
    pa, pb, pc = make_db("a"), make_db("b"), make_db("c")
    a, b, c = connect_all(pa, pb, pc)
    try:
        for d in (a, b, c):
            d.provision("s", ["item"])
        write(pa, "INSERT INTO item VALUES (1, 'x', 1, 1.0)")
        env = first_batch(a, "s")
        env[10][0][1] = 2**63 - 1  # the table's base time
        env[10][0][2][0][1] = 10  # the row's time offset (a short row: [tick, time, *values])
        with contextlib.suppress(peersync.ProtocolError):  # refusing it is the expected behaviour
            b.apply("s", msgpack.packb(env, use_bin_type=True), Policy.LAST_WRITER_WINS)
        peersync.sync(b, c, "s")  # raises ProtocolError today
        peersync.sync(a, c, "s")
        assert rows(pc, "item") == rows(pa, "item")
    finally:
        for d in (a, b, c):
            d.close()


def test_made_with_tick_at_int64_max_is_a_protocol_error(make_db: MakeDb) -> None:
    """A made-with range ending at tick 2**63 - 1 is refused with a clear ProtocolError (and
    nothing is committed), not a bare OverflowError from binding the range's end."""
    pa, pb = make_db("a"), make_db("b")
    a, b = connect_all(pa, pb)
    try:
        for d in (a, b):
            d.provision("s", ["item"])
        write(pa, "INSERT INTO item VALUES (1, 'x', 1, 1.0)")
        env = first_batch(a, "s")
        env[5] = Knowledge.from_wire(env[5]).add(env[3], 2**63 - 1).to_wire()
        with pytest.raises(peersync.ProtocolError):
            b.apply("s", msgpack.packb(env, use_bin_type=True), Policy.LAST_WRITER_WINS)
    finally:
        a.close()
        b.close()


def test_row_vouched_for_only_by_another_rows_extra_knowledge_is_refused(make_db: MakeDb) -> None:
    """A row's version is checked against the extra made-with knowledge that this row names,
    not against any extra of the batch: a row flagged with extra #1 whose version only
    extra #2 holds is refused with ProtocolError, as the reference decoder
    (``decode_batch``) refuses it, and nothing is written or learned."""
    pa, pb = make_db("a"), make_db("b")
    a, b = connect_all(pa, pb)
    try:
        for db in (a, b):
            db.provision("s", ["item"])
        write(pa, "INSERT INTO item VALUES (1, 'x', 1, 1.0)")
        tick = a.describe("s").tick
        env: list[Any] = msgpack.unpackb(
            a.changes("s", Knowledge.empty(), 0, tick, max_rows=100, max_bytes=1 << 20), raw=False
        )
        y, z = b"Y" * 16, b"Z" * 16
        env[9] = [env[3], z]
        short = env[10][0][2][0]  # [tick, time, *values]: spelled out in full, to set its header
        env[10][0][2][0] = row = [short[0], 0, 0, None, None, None, *short[1:]]
        row[1], row[2], row[3] = 1 << 1, 1, 5  # flags: extra #1; version (Z, 5), which only extra #2 holds
        env[11] = [Knowledge.empty().add(y, 1).to_wire(), Knowledge.empty().add(z, 5).to_wire()]
        data = msgpack.packb(env, use_bin_type=True)
        with pytest.raises(peersync.ProtocolError):  # the reference decoder refuses it
            decode_batch(data, b.schemas("s"))
        before = b.describe("s").knowledge
        with pytest.raises(peersync.ProtocolError):
            b.apply("s", data, Policy.LAST_WRITER_WINS)
        assert rows(pb, "item") == []
        assert b.describe("s").knowledge == before
    finally:
        a.close()
        b.close()
