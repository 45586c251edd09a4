"""No resurrection (promise 4): a deleted row never comes back because an
older version of it arrives later, in a direct session, through a third peer,
or in a session cut short; nor after its tombstone is cleaned up."""

from __future__ import annotations

import pytest

import peersync
from peersync.testing import FaultyPeer

from .conftest import Net, push, sync
from .kinds import SCOPE


def test_an_older_version_arriving_through_another_peer_does_not_undo_a_delete(net: Net) -> None:
    a, b, c = net("a", "b", "c")
    a.insert("item", {"id": 1, "name": "pen", "qty": 1})
    sync(a, b)
    sync(a, c)  # c holds the row as it was before the delete
    a.delete("item", (1,))
    push(a, b)
    assert b.rows() == []
    sync(c, b)  # c's old version meets b's tombstone
    sync(c, a)
    assert a.rows() == b.rows() == c.rows() == []


def test_a_delete_made_knowing_an_update_wins_over_it_everywhere(net: Net) -> None:
    a, b = net("a", "b")
    a.insert("item", {"id": 1, "name": "pen", "qty": 1})
    sync(a, b)
    b.update("item", (1,), {"qty": 2})
    sync(a, b)
    a.delete("item", (1,))  # made knowing b's update
    sync(a, b)
    assert a.rows() == b.rows() == []
    assert not [c for n in (a, b) for c in n.conflicts()], "a delete made knowing the update is no conflict"


def test_a_delete_in_a_session_cut_short_is_not_undone(net: Net) -> None:
    a, b = net("a", "b")
    for i in range(4):
        a.insert("item", {"id": i, "name": "x", "qty": i})
    sync(a, b)
    a.delete("item", (0,))
    a.update("item", (1,), {"qty": 50})
    a.update("item", (2,), {"qty": 60})
    with pytest.raises(peersync.TransportError):
        peersync.run_session(a.peer, FaultyPeer(b.peer, interrupt_after=1), SCOPE, batch_size=1)
    sync(a, b)
    assert a.rows() == b.rows()
    assert not any(r[0] == 0 for r in b.rows())


@pytest.mark.needs("forget-tombstones")  # SQLite peers do not clean up tombstones yet
def test_a_peer_that_missed_a_cleaned_up_delete_is_refused_not_resurrected(net: Net) -> None:
    a, b = net("a", "b")
    a.insert("item", {"id": 1, "name": "pen", "qty": 1})
    sync(a, b)
    a.delete("item", (1,))
    a.kind.forget_tombstones(a.peer)
    with pytest.raises(peersync.ReplicaOutdated):
        push(a, b)
    # b -> a is allowed (a knows its own delete: b's old version is not sent).
    push(b, a)
    assert a.rows() == []
    assert b.rows() == [(1, "pen", 1)]
