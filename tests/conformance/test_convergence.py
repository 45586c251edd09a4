"""Convergence (promise 1) in several topologies, and foreign writers (promise 8):
writes made by a program that knows nothing of peersync reach every peer."""

from __future__ import annotations

import pytest

from .conftest import Net, Node, sync


def _write_everywhere(nodes: list[Node]) -> None:
    """Each peer inserts its own rows; a shared row is edited concurrently on
    two peers; the last peer inserts a row it deletes later."""
    for i, n in enumerate(nodes):
        n.insert("item", {"id": 100 + i, "name": n.label, "qty": i})
        n.insert("note", {"owner": n.label, "slug": "hello", "body": f"from {n.label}"})
    nodes[0].insert("item", {"id": 1, "name": "shared", "qty": 0})
    sync(nodes[0], nodes[1])
    nodes[0].update("item", (1,), {"qty": 10})
    nodes[1].update("item", (1,), {"qty": 11})
    nodes[-1].insert("item", {"id": 2, "name": "doomed", "qty": 0})


EDGES = {
    "pair": (2, [(0, 1)]),
    "chain": (3, [(0, 1), (1, 2)]),
    "ring of 3": (3, [(0, 1), (1, 2), (2, 0)]),
    "ring of 4": (4, [(0, 1), (1, 2), (2, 3), (3, 0)]),
    "star": (4, [(0, 1), (0, 2), (0, 3)]),
}


@pytest.mark.parametrize("topology", sorted(EDGES))
def test_every_topology_converges_to_identical_rows(net: Net, topology: str) -> None:
    size, edges = EDGES[topology]
    nodes = net(*"abcd"[:size])
    _write_everywhere(nodes)
    nodes[-1].delete("item", (2,))
    # Enough rounds along the edges for a change to cross the longest path.
    for _ in range(size):
        for i, j in edges:
            sync(nodes[i], nodes[j])
    first = nodes[0].state()
    assert first["item"], "the history wrote rows"
    assert all(n.state() == first for n in nodes)
    assert not any(r[0] == 2 for r in first["item"])
    assert (1, "shared", 11) in first["item"]  # the later of the two concurrent edits
    # Quiet: another round moves nothing.
    for i, j in edges:
        r = sync(nodes[i], nodes[j])
        assert (r.sent_a_to_b, r.sent_b_to_a) == (0, 0)


def test_foreign_writes_are_tracked_and_reach_the_other_peer(net: Net) -> None:
    a, b = net("a", "b")
    a.insert("item", {"id": 1, "name": "pen", "qty": 1})
    a.insert("item", {"id": 2, "name": "ink", "qty": 1})
    a.insert("note", {"owner": "ann", "slug": "x", "body": "hi"})
    assert sync(a, b).sent_a_to_b == 3
    assert b.state() == a.state()
    b.update("item", (1,), {"qty": 5})
    b.delete("item", (2,))
    b.update("note", ("ann", "x"), {"body": "bye"})
    assert sync(a, b).sent_b_to_a == 3
    assert a.rows() == [(1, "pen", 5)]
    assert a.rows("note") == [("ann", "x", "bye")]
    assert a.state() == b.state()


def test_a_write_that_changes_nothing_sends_nothing(net: Net) -> None:
    a, b = net("a", "b")
    a.insert("item", {"id": 1, "name": "pen", "qty": 1})
    sync(a, b)
    a.update("item", (1,), {"qty": 1})
    r = sync(a, b)
    assert (r.sent_a_to_b, r.sent_b_to_a) == (0, 0)
