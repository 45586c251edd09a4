"""``sync(..., on_progress=callback)``: the engine reports each session's
start, each batch applied and each session's end, exactly, as typed events
(peersync._engine.progress), with totals that match the result."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import peersync
from peersync import BatchApplied, ProgressEvent, SessionEnded, SessionStarted

from ..helpers import rows, write

MakeDb = Callable[..., Path]


def _pair(make_db: MakeDb, n: int) -> tuple[Path, Path]:
    a, b = make_db("a"), make_db("b")
    for p in (a, b):
        with peersync.connect(p) as d:
            d.provision("s", ["item", "tag"])
    write(a, *(f"INSERT INTO item VALUES ({i}, 'item {i}', {i}, 1.5)" for i in range(n)))
    return a, b


def test_events_count_every_batch_and_row_of_a_known_sync(make_db: MakeDb) -> None:
    a, b = _pair(make_db, 2500)
    write(b, "INSERT INTO item VALUES (9000, 'from b', 1, 0.5)")
    events: list[ProgressEvent] = []
    with peersync.connect(a) as pa, peersync.connect(b) as pb:
        result = peersync.sync(pa, pb, "s", batch_size=1000, on_progress=events.append)
    kinds = [type(e).__name__ for e in events]
    push, pull = result.sessions
    one_way = ["SessionStarted", *(["BatchApplied"] * push.batches), "SessionEnded"]
    assert kinds == [*one_way, "SessionStarted", *(["BatchApplied"] * pull.batches), "SessionEnded"]
    assert push.batches == 3 and push.sent == 2500
    push_batches = [e for e in events[: push.batches + 2] if isinstance(e, BatchApplied)]
    assert [e.rows for e in push_batches] == [1000, 1000, 500]
    assert [e.applied for e in push_batches] == [1000, 1000, 500]
    assert [e.total_rows for e in push_batches] == [1000, 2000, 2500]
    assert [e.total_batches for e in push_batches] == [1, 2, 3]
    assert sum(e.bytes for e in push_batches) == push.bytes == push_batches[-1].total_bytes
    assert all(e.source == pa.url and e.destination == pb.url and e.scope == "s" for e in push_batches)
    assert push_batches[-1].tick == push_batches[-1].upto  # the last batch reached the bound
    started = events[0]
    assert isinstance(started, SessionStarted) and started.first_tick == 1 and started.upto == 2500
    ended = [e for e in events if isinstance(e, SessionEnded)]
    assert [e.stats for e in ended] == [push, pull]
    assert sum(e.rows for e in events if isinstance(e, BatchApplied)) == result.sent_a_to_b + result.sent_b_to_a
    assert sum(e.bytes for e in events if isinstance(e, BatchApplied)) == result.bytes
    assert rows(a, "item") == rows(b, "item")

    # The pull gave A's copy of row 9000 a tick of A's: the next push teaches
    # it to B in one batch that carries no row; after that, nothing is due.
    again: list[ProgressEvent] = []
    with peersync.connect(a) as pa, peersync.connect(b) as pb:
        peersync.sync(pa, pb, "s", on_progress=again.append)
        assert [(type(e).__name__, getattr(e, "rows", None)) for e in again] == [
            ("SessionStarted", None), ("BatchApplied", 0), ("SessionEnded", None),
            ("SessionStarted", None), ("SessionEnded", None),
        ]  # fmt: skip
        quiet: list[ProgressEvent] = []
        peersync.sync(pa, pb, "s", on_progress=quiet.append)
    assert [type(e).__name__ for e in quiet] == ["SessionStarted", "SessionEnded"] * 2


def test_a_callback_that_raises_stops_the_sync_after_committed_batches(make_db: MakeDb) -> None:
    a, b = _pair(make_db, 300)
    seen: list[ProgressEvent] = []

    def stop_after_two(event: ProgressEvent) -> None:
        seen.append(event)
        if isinstance(event, BatchApplied) and event.total_batches == 2:
            raise KeyboardInterrupt

    with peersync.connect(a) as pa, peersync.connect(b) as pb, pytest.raises(KeyboardInterrupt):
        peersync.sync(pa, pb, "s", batch_size=100, on_progress=stop_after_two)
    assert len(rows(b, "item")) == 200  # the two batches applied stay committed
    with peersync.connect(a) as pa, peersync.connect(b) as pb:
        assert peersync.sync(pa, pb, "s", direction="push").sent_a_to_b == 100  # and the rest resumes
