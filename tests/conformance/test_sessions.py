"""Atomic, resumable sessions (promise 5): a session cut anywhere leaves the
destination with the batches it committed and matching knowledge; the next
session sends exactly the rest, and duplicated or re-sent batches change
nothing."""

from __future__ import annotations

import pytest

import peersync
from peersync.testing import FaultyPeer

from .conftest import Net, Node, push
from .kinds import SCOPE

ROWS = 6


def _six_rows(a: Node) -> None:
    for i in range(ROWS):
        a.insert("item", {"id": i, "name": "x", "qty": i})


@pytest.mark.parametrize("k", [0, 1, 3, 5])
def test_an_interrupted_session_resumes_with_exactly_the_rest(net: Net, k: int) -> None:
    a, b = net("a", "b")
    _six_rows(a)
    with pytest.raises(peersync.TransportError):
        peersync.run_session(a.peer, FaultyPeer(b.peer, interrupt_after=k), SCOPE, batch_size=1)
    assert len(b.rows()) == k, "every committed batch stays, nothing else"
    rest = push(a, b, batch_size=1)
    assert rest.sent_a_to_b == ROWS - k
    assert b.rows() == a.rows()
    assert b.knowledge().contains_knowledge(a.knowledge())


@pytest.mark.parametrize("lose_after", [0, 2])
def test_a_lost_reply_is_not_sent_again(net: Net, lose_after: int) -> None:
    a, b = net("a", "b")
    _six_rows(a)
    with pytest.raises(peersync.TransportError):
        peersync.run_session(a.peer, FaultyPeer(b.peer, lose_reply_after=lose_after), SCOPE, batch_size=1)
    committed = len(b.rows())
    assert committed == lose_after + 1
    assert push(a, b, batch_size=1).sent_a_to_b == ROWS - committed
    assert b.rows() == a.rows()


def test_duplicated_batches_change_nothing(net: Net) -> None:
    a, b = net("a", "b")
    _six_rows(a)
    stats = peersync.run_session(a.peer, FaultyPeer(b.peer, duplicate=True), SCOPE, batch_size=2)
    # The wrapper reports each batch's second delivery: every row of it was known.
    assert (stats.applied, stats.skipped_known) == (0, ROWS)
    assert b.rows() == a.rows()
    assert push(a, b).sent_a_to_b == 0


def test_a_retried_end_of_session_changes_nothing(net: Net) -> None:
    a, b = net("a", "b")
    _six_rows(a)
    ends: list[peersync.Knowledge] = []

    class Twice(FaultyPeer):
        def finish(self, scope: str, end: object) -> peersync.Knowledge:
            first = self.peer.finish(scope, end)  # type: ignore[arg-type]
            ends.append(first)
            return self.peer.finish(scope, end)  # type: ignore[arg-type]

    peersync.run_session(a.peer, Twice(b.peer), SCOPE)
    assert b.knowledge() == ends[0]
    assert b.rows() == a.rows()
