"""What ``peersync.sync`` accepts: policies by name as directions are, and
every bad argument refused with ConfigurationError before anything is sent."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import peersync

from ..helpers import rows, write

MakeDb = Callable[..., Path]


def _conflicting_pair(make_db: MakeDb) -> tuple[Path, Path]:
    """A and B both hold item 1, then each edits it: one update/update conflict."""
    a, b = make_db("a"), make_db("b")
    for p in (a, b):
        with peersync.connect(p) as d:
            d.provision("s", ["item", "tag"])
    write(a, "INSERT INTO item VALUES (1, 'first', 1, 1.0)")
    with peersync.connect(a) as da, peersync.connect(b) as db_:
        peersync.sync(da, db_, "s")
    write(b, "UPDATE item SET name = 'by b' WHERE id = 1")
    write(a, "UPDATE item SET name = 'by a' WHERE id = 1")
    return a, b


@pytest.mark.parametrize(
    ("policy", "winner"), [("source-wins", "by a"), ("destination-wins", "by b"), (peersync.Policy.SOURCE_WINS, "by a")]
)
def test_a_policy_given_by_name_resolves_conflicts(make_db: MakeDb, policy: object, winner: str) -> None:
    a, b = _conflicting_pair(make_db)
    with peersync.connect(a) as da, peersync.connect(b) as db_:
        r = peersync.sync(da, db_, "s", direction="push", policy=policy)  # type: ignore[arg-type]
        assert r.conflicts == 1
        (c,) = db_.conflicts("s")
    assert c.policy == peersync.Policy(policy).value
    assert c.outcome is (peersync.Outcome.SOURCE if winner == "by a" else peersync.Outcome.DESTINATION)
    assert c.detail == ""
    assert rows(b, "item")[0][1] == winner


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"policy": "newest-wins"}, "unknown conflict policy 'newest-wins'.*last-writer-wins"),
        ({"policy": 3}, "not int"),
        ({"policy": None}, "not NoneType"),
        ({"direction": "sideways"}, "unknown direction 'sideways'"),
        ({"batch_size": 0}, "batch size"),
        ({"batch_size": 99999999999999999999999}, "batch size"),
        ({"batch_size": 2.5}, "batch size"),
        ({"batch_bytes": 2**63}, "batch bytes"),
    ],
)
def test_bad_arguments_are_refused_before_anything_moves(
    make_db: MakeDb, kwargs: dict[str, object], match: str
) -> None:
    a, b = _conflicting_pair(make_db)
    before = rows(a, "item"), rows(b, "item")
    with peersync.connect(a) as da, peersync.connect(b) as db_:
        with pytest.raises(peersync.ConfigurationError, match=match):
            peersync.sync(da, db_, "s", **kwargs)  # type: ignore[arg-type]
        if "direction" not in kwargs:  # run_session has no direction
            with pytest.raises(peersync.ConfigurationError, match=match):
                peersync.run_session(da, db_, "s", **kwargs)  # type: ignore[arg-type]
        assert db_.conflicts("s") == []
    assert (rows(a, "item"), rows(b, "item")) == before


def test_the_largest_batch_limits_work(make_db: MakeDb) -> None:
    a, b = _conflicting_pair(make_db)
    with peersync.connect(a) as da, peersync.connect(b) as db_:
        r = peersync.sync(da, db_, "s", batch_size=2**63 - 1, batch_bytes=2**63 - 1)
    assert r.conflicts == 1


@pytest.mark.parametrize("timeout", [float("nan"), float("inf"), -1.0, 1e10])
def test_a_bad_timeout_is_refused(make_db: MakeDb, timeout: float) -> None:
    with pytest.raises(peersync.ConfigurationError, match="timeout"):
        peersync.connect(make_db("a"), timeout=timeout)
