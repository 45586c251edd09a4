"""No redundancy (promise 3): a change is never sent to a replica whose
knowledge contains it. Around a loop P1 -> P2 -> P3 -> P1, P1 receives none of
its own changes, and a round with no new writes sends nothing."""

from __future__ import annotations

import peersync
from peersync.testing import RecordingPeer

from .conftest import Net
from .kinds import SCOPE


def test_a_loop_never_returns_a_change_to_its_origin(net: Net) -> None:
    nodes = net("p1", "p2", "p3")
    for i, n in enumerate(nodes):
        for k in range(3):
            n.insert("item", {"id": 10 * i + k, "name": n.label, "qty": k})
    nodes[0].update("item", (0,), {"qty": 99})
    recorders = [RecordingPeer(n.peer) for n in nodes]
    own = [n.peer.describe(SCOPE).replica_id for n in nodes]
    for _ in range(2):
        for i in range(3):
            j = (i + 1) % 3
            peersync.run_session(nodes[i].peer, recorders[j], SCOPE, batch_size=2)
    for i, rec in enumerate(recorders):
        assert rec.redundant() == [], f"{nodes[i].label} received versions it already knew"
        back = [c for s in rec.received for rows in s.batch.changes.values() for c in rows if c[2][0] == own[i]]
        assert back == [], f"{nodes[i].label} received its own changes back"
    assert all(n.rows() == nodes[0].rows() for n in nodes)
    assert len(nodes[0].rows()) == 9
    quiet = [peersync.run_session(nodes[i].peer, nodes[(i + 1) % 3].peer, SCOPE).sent for i in range(3)]
    assert quiet == [0, 0, 0]


def test_a_change_that_came_round_both_sides_is_not_sent_again(net: Net) -> None:
    """P1's row reaches P3 through P2; P1 -> P3 directly then sends nothing."""
    p1, p2, p3 = net("p1", "p2", "p3")
    p1.insert("item", {"id": 1, "name": "pen", "qty": 1})
    peersync.run_session(p1.peer, p2.peer, SCOPE)
    peersync.run_session(p2.peer, p3.peer, SCOPE)
    rec = RecordingPeer(p3.peer)
    assert peersync.run_session(p1.peer, rec, SCOPE).sent == 0
    assert rec.redundant() == []
    assert p3.rows() == [(1, "pen", 1)]
