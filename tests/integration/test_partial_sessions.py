"""Sessions that do not end in one go: rows applied in a session whose completion never
arrived, outcomes written there, and retry passes that meet a concurrent session. What
such a session committed is exact, and it never raises a conflict that a completed one
would not (docs/design.md, "Made-with knowledge"; "The session", steps 5 to 8)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import peersync
from peersync import Policy
from peersync.testing import FaultyPeer

from ..helpers import connect_all, rows, write

MakeDb = Callable[..., Path]


@pytest.mark.parametrize("x_change", ["update", "delete"])
def test_row_from_an_unfinished_session_does_not_conflict_with_a_version_it_supersedes(
    make_db: MakeDb, x_change: str
) -> None:
    """D holds X's change, made knowing S's v2, from a session whose reply was lost: D's
    knowledge lacks v2, but its row supersedes it. When S then sends v2, triage also asks
    what D's own row was made with (the record in ``_peersync_partial`` it points to) and
    skips v2 as obsolete: no conflict, and under source-wins v2 neither overwrites X's later
    edit nor resurrects X's delete, at D or, through D, at X."""
    ps, px, pd = make_db("s"), make_db("x"), make_db("d")
    s, x, d = connect_all(ps, px, pd)
    try:
        for db in (s, x, d):
            db.provision("s", ["item"])
        write(ps, "INSERT INTO item VALUES (1, 'v1', 1, 1.0)")
        peersync.sync(s, x, "s")
        peersync.sync(s, d, "s")
        write(ps, "UPDATE item SET name = 'v2' WHERE id = 1")
        peersync.sync(s, x, "s", direction="push")
        change = "UPDATE item SET qty = 3 WHERE id = 1" if x_change == "update" else "DELETE FROM item WHERE id = 1"
        write(px, change)  # X's change is made knowing v2
        expected = rows(px, "item")
        with pytest.raises(peersync.TransportError):
            peersync.run_session(x, FaultyPeer(d, lose_reply_after=0), "s")  # D commits X's row, no completion
        assert rows(pd, "item") == expected
        res = peersync.run_session(s, d, "s", policy=Policy.SOURCE_WINS)
        assert (res.conflicts, d.conflicts("s")) == (0, [])
        assert rows(pd, "item") == expected
        peersync.sync(d, x, "s", policy=Policy.SOURCE_WINS)
        assert rows(px, "item") == expected
    finally:
        for db in (s, x, d):
            db.close()


def test_conflict_outcome_written_in_an_unfinished_session_keeps_the_rows_made_with_knowledge(
    make_db: MakeDb,
) -> None:
    """S's edit, made on top of X's row, wins a conflict at D in a session whose reply is lost;
    D writes the outcome as a new local version. That version was made knowing S's row and
    everything it superseded, and it carries that knowledge when it travels on, so at E,
    which holds X's row, it is no conflict. A false conflict there would, under
    destination-wins, keep X's older row at E and undo S's edit at D and everywhere."""
    px, ps, pd, pe = make_db("x"), make_db("s"), make_db("d"), make_db("e")
    x, s, d, e = dbs = connect_all(px, ps, pd, pe)
    try:
        for db in dbs:
            db.provision("s", ["item"])
        write(px, "INSERT INTO item VALUES (1, 'x', 1, 1.0)")
        peersync.sync(x, s, "s", direction="push")
        peersync.sync(x, e, "s", direction="push")
        write(pd, "INSERT INTO item VALUES (1, 'd', 1, 1.0)")  # the same key, made at D independently
        write(ps, "UPDATE item SET name = 's' WHERE id = 1")  # made knowing X's row
        with pytest.raises(peersync.TransportError):
            peersync.run_session(s, FaultyPeer(d, lose_reply_after=0), "s", policy=Policy.SOURCE_WINS)
        assert rows(pd, "item") == [(1, "s", 1, 1.0)]  # D's outcome: a new local version, made knowing S's row
        res = peersync.run_session(d, e, "s", policy=Policy.DESTINATION_WINS)
        assert (res.conflicts, e.conflicts("s")) == (0, [])  # X's row is superseded: no conflict at E
        assert rows(pe, "item") == [(1, "s", 1, 1.0)]
    finally:
        for db in dbs:
            db.close()


class _Meanwhile(FaultyPeer):
    """A destination that runs ``action`` just before applying batch number ``before`` (1-based)."""

    def __init__(self, peer: peersync.Database, before: int, action: Callable[[], object]) -> None:
        super().__init__(peer)
        self.before, self.action = before, action

    def apply(self, scope: str, data: bytes, handler: Any) -> Any:
        if self.applied + 1 == self.before:
            self.action()
        return super().apply(scope, data, handler)


def test_retry_pass_completes_after_a_concurrent_session_taught_the_destination_newer_ticks(make_db: MakeDb) -> None:
    """A retry pass (a child failed: its parent came in a later batch) starts where the
    destination's knowledge of the source now ends. If another session taught the
    destination the source's newer ticks meanwhile (a server farm: two clients syncing into
    one server), that start lies past the pass's bound: nothing is left to ask for, and the
    session completes, instead of asking for an inverted tick range that the destination
    refuses as a malformed batch."""
    ps, px, pd = make_db("s"), make_db("x"), make_db("d")
    s, x, d = dbs = connect_all(ps, px, pd)
    try:
        for db in dbs:
            db.provision("s", ["item", "tag"])
        write(ps, "INSERT INTO item VALUES (5, 'other', 1, 1.0)", "INSERT INTO item VALUES (1, 'p', 1, 1.0)")
        write(ps, "INSERT INTO tag VALUES (1, 'l')")
        write(ps, "UPDATE item SET name = 'p2' WHERE id = 1")  # the parent now comes after its child

        def meanwhile() -> None:  # another session reaches D with S's newer state
            write(ps, "INSERT INTO item VALUES (6, 'new', 1, 1.0)")
            peersync.sync(s, x, "s", direction="push")
            peersync.run_session(x, d, "s")

        # One log entry per batch: item 5 applied; item 1's superseded entry; the tag fails (its parent
        # is not there yet); then, before the parent's batch, the other session runs. A retry pass follows.
        peersync.run_session(s, _Meanwhile(d, 4, meanwhile), "s", batch_size=1)  # ProtocolError today
        assert rows(pd, "item") == rows(ps, "item")
        assert rows(pd, "tag") == rows(ps, "tag")
    finally:
        for db in dbs:
            db.close()
