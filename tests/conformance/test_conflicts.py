"""Conflicts of every type under each policy, and no lost update (promise 2):
a change is only ever replaced by a change made knowing it, or by the
deterministic winner of a conflict that both sides record in their logs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from peersync import Conflict, ConflictType, Outcome, Policy, Resolution

from .conftest import Net, Node, push, sync

PEN = {"id": 1, "name": "pen", "qty": 1}


def _both_hold_the_row(a: Node, b: Node) -> None:
    a.insert("item", PEN, ms=0)
    sync(a, b)


# Each scenario makes the source (a) and the destination (b) change row 1
# concurrently: the destination at +1000 ms, the source at +2000 ms (or the
# other way round when the destination is to be the later writer). Returns
# what each side holds afterwards.
def _update_update(a: Node, b: Node, ta: int, tb: int) -> None:
    _both_hold_the_row(a, b)
    b.update("item", (1,), {"qty": 2}, ms=tb)
    a.update("item", (1,), {"qty": 3}, ms=ta)


def _update_delete(a: Node, b: Node, ta: int, tb: int) -> None:
    _both_hold_the_row(a, b)
    b.update("item", (1,), {"qty": 2}, ms=tb)
    a.delete("item", (1,), ms=ta)


def _delete_update(a: Node, b: Node, ta: int, tb: int) -> None:
    _both_hold_the_row(a, b)
    b.delete("item", (1,), ms=tb)
    a.update("item", (1,), {"qty": 3}, ms=ta)


def _insert_insert(a: Node, b: Node, ta: int, tb: int) -> None:
    b.insert("item", {"id": 1, "name": "ink", "qty": 2}, ms=tb)
    a.insert("item", {"id": 1, "name": "pen", "qty": 3}, ms=ta)


def _delete_delete(a: Node, b: Node, ta: int, tb: int) -> None:
    _both_hold_the_row(a, b)
    b.delete("item", (1,), ms=tb)
    a.delete("item", (1,), ms=ta)


SCENARIOS: dict[ConflictType, Callable[[Node, Node, int, int], None]] = {
    ConflictType.UPDATE_UPDATE: _update_update,
    ConflictType.UPDATE_DELETE: _update_delete,
    ConflictType.DELETE_UPDATE: _delete_update,
    ConflictType.INSERT_INSERT: _insert_insert,
    ConflictType.DELETE_DELETE: _delete_delete,
}
CASES = [
    (Policy.LAST_WRITER_WINS, "source"),
    (Policy.LAST_WRITER_WINS, "destination"),
    (Policy.SOURCE_WINS, "source"),
    (Policy.SOURCE_WINS, "destination"),
    (Policy.DESTINATION_WINS, "source"),
    (Policy.DESTINATION_WINS, "destination"),
]


@pytest.mark.needs("client-policy")  # a served destination resolves by its own policy
@pytest.mark.parametrize("kind", list(SCENARIOS), ids=[k.value for k in SCENARIOS])
@pytest.mark.parametrize(("policy", "later"), CASES, ids=[f"{p.value}-{w}-later" for p, w in CASES])
def test_every_conflict_type_is_classified_resolved_logged_and_converges(
    net: Net, kind: ConflictType, policy: Policy, later: str
) -> None:
    a, b = net("a", "b")
    ta, tb = (2000, 1000) if later == "source" else (1000, 2000)
    SCENARIOS[kind](a, b, ta, tb)
    source_rows, dest_rows = a.rows(), b.rows()
    r = push(a, b, policy=policy)
    assert r.conflicts == 1
    (c,) = b.conflicts()[-1:]
    assert (c.type, c.table, c.key) == (kind, "item", (1,))
    if kind is ConflictType.DELETE_DELETE:
        # Both sides hold the same (no row): no policy is asked, the later version stays.
        assert c.policy == Policy.LAST_WRITER_WINS.value
        winner = later
    else:
        assert c.policy == policy.value
        winner = {Policy.SOURCE_WINS: "source", Policy.DESTINATION_WINS: "destination"}.get(policy, later)
        # Both sides are recorded: nothing is lost without a trace.
        assert c.local_row == (None if not dest_rows else dict(zip(("id", "name", "qty"), dest_rows[0], strict=True)))
        assert c.remote_row == (
            None if not source_rows else dict(zip(("id", "name", "qty"), source_rows[0], strict=True))
        )
    assert c.outcome is (Outcome.SOURCE if winner == "source" else Outcome.DESTINATION)
    expected = source_rows if winner == "source" else dest_rows
    assert b.rows() == expected
    sync(a, b, policy=policy)
    assert a.rows() == b.rows() == expected
    again = sync(a, b, policy=policy)
    assert (again.sent_a_to_b, again.sent_b_to_a, again.conflicts) == (0, 0, 0)


def test_the_same_winner_whatever_the_order_changes_arrive(net: Net) -> None:
    """Last writer wins is deterministic: three replicas that meet two
    concurrent edits in different orders keep the same one."""
    a, b, c = net("a", "b", "c")
    a.insert("item", PEN, ms=0)
    sync(a, b)
    sync(a, c)
    a.update("item", (1,), {"qty": 10}, ms=1000)
    b.update("item", (1,), {"qty": 20}, ms=2000)  # the later one
    push(a, c)
    push(b, c)
    push(b, a)
    push(a, b)
    sync(b, c)
    sync(a, c)
    assert a.rows() == b.rows() == c.rows() == [(1, "pen", 20)]


def test_a_change_made_knowing_another_replaces_it_without_a_conflict(net: Net) -> None:
    a, b, c = net("a", "b", "c")
    a.insert("item", PEN)
    sync(a, b)
    b.update("item", (1,), {"qty": 2})  # made knowing a's insert
    sync(b, c)
    c.update("item", (1,), {"qty": 3})  # made knowing b's update
    sync(c, a)
    sync(a, b)
    assert a.rows() == b.rows() == c.rows() == [(1, "pen", 3)]
    assert [x for n in (a, b, c) for x in n.conflicts()] == []


@pytest.mark.needs("client-policy")  # a served destination resolves by its own policy
def test_defer_leaves_the_row_and_asks_again_next_session(net: Net) -> None:
    a, b = net("a", "b")
    _update_update(a, b, 2000, 1000)
    seen: list[Conflict] = []

    def defer(conflict: Conflict) -> Outcome:
        seen.append(conflict)
        return Outcome.DEFER

    assert push(a, b, policy=defer).conflicts == 1
    assert b.rows() == [(1, "pen", 2)]
    push(a, b, policy=defer)
    assert len(seen) == 2, "a deferred change comes again"
    push(a, b)
    assert b.rows() == [(1, "pen", 3)]


@pytest.mark.needs("client-policy")  # a served destination resolves by its own policy
def test_a_callback_that_raises_defers_and_the_session_goes_on(net: Net) -> None:
    a, b = net("a", "b")
    _update_update(a, b, 2000, 1000)
    a.insert("item", {"id": 2, "name": "ink", "qty": 1})

    def broken(conflict: Conflict) -> Any:
        raise RuntimeError("no")

    r = push(a, b, policy=broken)
    assert (r.conflicts, r.sessions[0].deferred) == (1, 1)
    assert b.rows() == [(1, "pen", 2), (2, "ink", 1)]
    assert "RuntimeError" in b.conflicts()[-1].detail


@pytest.mark.needs("client-policy")  # a served destination resolves by its own policy
def test_a_merged_row_reaches_every_replica(net: Net) -> None:
    a, b, c = net("a", "b", "c")
    _update_update(a, b, 2000, 1000)

    def merge(conflict: Conflict) -> Resolution:
        local, remote = conflict.local_row or {}, conflict.remote_row or {}
        return Resolution(Outcome.MERGE, {"qty": local["qty"] + remote["qty"]})

    push(a, b, policy=merge)
    assert b.rows() == [(1, "pen", 5)]
    assert b.conflicts()[-1].outcome is Outcome.MERGE
    sync(b, a)
    sync(b, c)
    assert a.rows() == b.rows() == c.rows() == [(1, "pen", 5)]


def _settle(nodes: list[Node], policy: Policy) -> None:
    """Every pair both ways until a round moves nothing (at most five rounds)."""
    for _ in range(5):
        moved = 0
        for i, x in enumerate(nodes):
            for y in nodes[i + 1 :]:
                r = sync(x, y, policy=policy)
                moved += r.sent_a_to_b + r.sent_b_to_a
        if not moved:
            return
    raise AssertionError("the replicas kept sending changes")


@pytest.mark.parametrize("policy", [Policy.DESTINATION_WINS, Policy.SOURCE_WINS])
def test_two_replicas_resolving_one_conflict_opposite_ways_still_converge(net: Net, policy: Policy) -> None:
    """Under a policy that is not last writer wins, B and C each resolve the
    same conflict once, in opposite ways, and each then knows both versions:
    only if a resolution is a new change do they ever agree."""
    a, b, c, d = net("a", "b", "c", "d")
    a.insert("item", {"id": 1, "name": "v0", "qty": 1})
    _settle([a, b, c, d], policy)
    a.update("item", (1,), {"name": "a"})
    b.update("item", (1,), {"name": "b"})
    push(a, c, policy=policy)
    push(b, d, policy=policy)
    assert push(c, b, policy=policy).conflicts == 1
    assert push(d, c, policy=policy).conflicts == 1
    _settle([a, b, c, d], policy)
    assert a.rows() == b.rows() == c.rows() == d.rows()
