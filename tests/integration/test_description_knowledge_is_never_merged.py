"""A session merges a source's knowledge only as the made-with knowledge of a
final batch, never as the source's description reports it (docs/design.md,
"The tick contract", third rule).

A description's knowledge is what the source holds, as a destination's
filter needs it: on a server it names rows committed above the snapshot
bound, which no batch of this session carries. Merging it would make the
destination claim those rows and skip them for good (a lost row).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import peersync

from ..helpers import peers, push, rows, write


class _HoldsMore:
    """A source whose description names versions it holds but cannot vouch
    for yet (as a server's does for rows above its bound)."""

    def __init__(self, peer: Any, more: peersync.Knowledge) -> None:
        self.peer, self.more = peer, more

    def __getattr__(self, name: str) -> Any:
        return getattr(self.peer, name)

    def describe(self, scope: str) -> Any:
        info = self.peer.describe(scope)
        return replace(info, knowledge=info.knowledge | self.more)


def test_knowledge_a_source_describes_but_no_final_batch_vouches_for_is_not_merged(
    make_db: Callable[..., Path],
) -> None:
    a, b, c = peers(make_db, "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER)", ["item"])
    write(a, "INSERT INTO item VALUES (1, 'a', 1)")
    write(c, "INSERT INTO item VALUES (2, 'c', 2)")
    push(a, b)
    with peersync.connect(c) as pc:
        c_holds = pc.describe("s").knowledge
    with peersync.connect(a) as pa, peersync.connect(b) as pb:
        # Nothing of A's is due at B; A's description names C's row.
        r = peersync.sync(_HoldsMore(pa, c_holds), pb, "s", direction="push")  # type: ignore[arg-type]
        assert r.sent_a_to_b == 0
        assert not pb.describe("s").knowledge.contains_knowledge(c_holds)
    assert push(c, b).sent_a_to_b == 1
    assert rows(b, "item") == [(1, "a", 1), (2, "c", 2)]
