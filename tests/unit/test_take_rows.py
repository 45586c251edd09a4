"""``take_rows`` packs a batch's rows up to its row and byte limits. A single
table's rows go through a loop of their own (``_take_one``, the loop of an
initial sync); several tables' through a merge in tick order. Both must apply
the same rule: the first row goes whatever its size, then a row goes while
the batch has fewer than ``max_rows`` rows and its bytes fit in ``room``."""

from __future__ import annotations

import random
from typing import Any

import msgpack
import pytest

from peersync._adapters.sql.batch_frame import take_rows
from peersync._engine.wire import PackedRows


def _rows(rnd: random.Random, n: int) -> list[tuple[Any, ...]]:
    tick = 0
    out = []
    for _ in range(n):
        tick += rnd.randint(1, 3)
        out.append((tick, rnd.randint(0, 9), "x" * rnd.randint(0, 40)))
    return out


def _plain(tables: list[list[Any]]) -> list[tuple[str, int, list[Any]]]:
    out = []
    for name, base, packed in tables:
        assert isinstance(packed, PackedRows) and packed.count == len(packed.parts)
        out.append((name, base, [msgpack.unpackb(p) for p in packed.parts]))
    return out


def _expected(rows: list[tuple[Any, ...]], entry: int, max_rows: int, room: int) -> tuple[int, int | None]:
    """How many rows the rule takes, and the tick of the last one (None: all)."""
    size = taken = 0
    for row in rows:
        grown = len(msgpack.packb(list(row))) + (entry if taken == 0 else 0)
        if taken and (taken >= max_rows or size + grown > room):
            return taken, rows[taken - 1][0]
        size += grown
        taken += 1
    return taken, None


@pytest.mark.parametrize("seed", range(40))
def test_one_table_and_the_merge_take_the_same_rows(seed: int) -> None:
    rnd = random.Random(seed)
    rows = _rows(rnd, rnd.randint(1, 60))
    max_rows, room = rnd.randint(1, 70), rnd.randint(1, 1500)
    alone = take_rows([("t", 7, iter(rows))], max_rows, room)
    # An empty second table sends the same rows through the merge.
    merged = take_rows([("t", 7, iter(rows)), ("u", 0, iter([]))], max_rows, room)
    assert _plain(alone[0]) == _plain(merged[0]) and alone[1] == merged[1]
    taken, last = _expected(rows, len("t") + 16, max_rows, room)
    assert alone[1] == last
    assert _plain(alone[0]) == [("t", 7, [list(r) for r in rows[:taken]])]


def test_the_first_row_goes_whatever_its_size() -> None:
    big = [(1, "y" * 5000), (2, "z")]
    tables, last = take_rows([("t", 0, iter(big))], 10, 100)
    assert _plain(tables) == [("t", 0, [[1, "y" * 5000]])] and last == 1


def test_the_row_limit_stops_a_batch_of_small_rows() -> None:
    rows = [(i, "") for i in range(1, 11)]
    tables, last = take_rows([("t", 0, iter(rows))], 4, 10**6)
    assert _plain(tables) == [("t", 0, [[i, ""] for i in range(1, 5)])] and last == 4
    tables, last = take_rows([("t", 0, iter(rows))], 10, 10**6)
    assert len(_plain(tables)[0][2]) == 10 and last is None


def test_a_row_that_fills_the_room_exactly_goes() -> None:
    # [i, ""] packs to 3 bytes; the table's first row adds its entry (len("t") + 16).
    rows = [(i, "") for i in range(1, 11)]
    for room, taken in ((29, 4), (28, 3), (20, 1), (19, 1)):
        for readers in ([("t", 0, iter(rows))], [("t", 0, iter(rows)), ("u", 0, iter([]))]):
            tables, last = take_rows(readers, 100, room)
            assert len(_plain(tables)[0][2]) == taken and last == taken, (room, len(readers))
