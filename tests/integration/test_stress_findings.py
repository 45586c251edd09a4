"""Deterministic reproductions of failures found by stress runs of the randomized models.

Each test states the SEMANTICS.md promise it shows broken. They fail on the commit
they were found on and should pass once the bug is fixed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import peersync

from ..helpers import rows, write

ONE_TABLE = "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER);"


@pytest.mark.xfail(
    strict=True,
    reason="limit (README): a table in two scopes synced between the same two peers re-sends its rows between the"
    " scopes (each scope reports rows applied through the other as its own changes)",
)
def test_two_scopes_sharing_a_table_go_quiet(make_db: Callable[..., Path]) -> None:
    """A table in two scopes (SEMANTICS.md: "a table may belong to several scopes").

    One insert on A, then both scopes synced between A and B a few times with no new
    writes. Promise 3 (a second session with no new writes sends 0) and promise 2/the
    conflict rules (no conflict without a concurrent change) must hold. Found: a row
    that arrived through scope s is reported by scope t as a new local change of the
    receiving replica, so t sends it back as an insert/insert conflict, whose outcome is
    again a local change for s, and so on: every round sends a change in each scope
    forever and logs a spurious conflict.
    """
    pa, pb = make_db("a", ONE_TABLE), make_db("b", ONE_TABLE)
    a, b = peersync.connect(pa), peersync.connect(pb)
    try:
        for db in (a, b):
            db.provision("s", ["item"])
            db.provision("t", ["item"])
        write(pa, "INSERT INTO item VALUES (1, 'x', 1)")
        for _ in range(2):
            peersync.sync(a, b, "s")
            peersync.sync(a, b, "t")
        assert rows(pa, "item") == rows(pb, "item") == [(1, "x", 1)]
        again = [peersync.sync(a, b, sc) for sc in ("s", "t")]
        assert [(r.sent_a_to_b, r.sent_b_to_a) for r in again] == [(0, 0), (0, 0)], "sessions never go quiet"
        assert a.conflicts() == [] and b.conflicts() == [], "a single insert logged conflicts"
    finally:
        a.close()
        b.close()
