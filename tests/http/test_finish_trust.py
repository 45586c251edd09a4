"""A served database merges at ``finish`` only knowledge that a final batch
applied there vouches for (docs/protocol.md, "Finish"): a write-token holder
cannot make the server claim versions it never received (a lost update)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import peersync
from peersync._engine.model import SessionEnd

from ..helpers import write
from .conftest import Server, items, make, run
from .test_end_to_end import Counting


def _served(folder: Path, servers: Callable[..., Server], name: str) -> tuple[Path, Server, str]:
    db = make(folder / f"{name}.db")
    token = run("token", "add", str(db), "--scope", "s", "--rights", "write").stdout.splitlines()[-1]
    return db, servers(db), token


def test_a_forged_finish_claims_nothing_and_the_next_sync_still_delivers(
    folder: Path, servers: Callable[..., Server]
) -> None:
    served, server, token = _served(folder, servers, "forged-finish")
    third = make(folder / "forged-third.db")
    write(third, *(f"INSERT INTO item VALUES ({i}, 'third {i}', {i})" for i in range(5)))
    with peersync.connect(third) as t:
        claim = t.describe("s").knowledge  # versions the server never received
    with peersync.connect(server.url, token=token) as remote:
        before = remote.describe("s").knowledge
        assert not before.contains_knowledge(claim)
        rows_before = items(served)
        after = remote.finish("s", SessionEnd(uuid.uuid4().hex, claim, peersync.Knowledge.empty()))
        assert after == before  # the forged merge was dropped
        assert remote.describe("s").knowledge == before
        assert items(served) == rows_before
    with peersync.connect(third) as t, peersync.connect(server.url, token=token) as remote:
        result = peersync.sync(t, remote, "s", direction="push")
    assert result.sent_a_to_b == 5
    assert items(served) == items(third)


def test_knowledge_learned_through_no_row_still_merges_over_http(folder: Path, servers: Callable[..., Server]) -> None:
    """B knows A's ticks only through a merge (it already held A's rows), so
    nothing of B's is due at the server: the session fetches an empty final
    batch, and the server merges its made-with knowledge, so A's later push
    sends nothing."""
    served, server, token = _served(folder, servers, "merge-only")
    a, b = make(folder / "merge-only-a.db"), make(folder / "merge-only-b.db")
    write(served, "INSERT INTO item VALUES (1, 'served', 1)")
    with peersync.connect(server.url, token=token) as s, peersync.connect(a) as pa, peersync.connect(b) as pb:
        peersync.sync(s, pa, "s", direction="push")  # A holds the row, at an A tick
        peersync.sync(s, pb, "s", direction="push")
        peersync.sync(pb, s, "s", direction="push")  # the server knows all of B's ticks
        peersync.sync(pa, pb, "s", direction="push")  # B learns A's ticks, through no row
        known = s.describe("s").knowledge
        assert not known.contains_knowledge(pb.describe("s").knowledge)
        peersync.sync(pb, s, "s", direction="push")  # nothing of B's is due
        assert s.describe("s").knowledge.contains_knowledge(pa.describe("s").knowledge)
        assert peersync.sync(pa, s, "s", direction="push").sent_a_to_b == 0
    assert items(served) == items(a) == items(b)


def test_a_session_with_nothing_to_send_costs_one_request(folder: Path, servers: Callable[..., Server]) -> None:
    served, server, token = _served(folder, servers, "quiet")
    laptop = make(folder / "quiet-laptop.db")
    write(laptop, "INSERT INTO item VALUES (1, 'laptop', 1)")
    with peersync.connect(laptop) as a, peersync.connect(server.url, token=token) as b:
        peersync.sync(a, b, "s")
        peersync.sync(a, b, "s")
    counted = Counting()
    with peersync.connect(laptop) as a, peersync.connect(server.url, token=token, transport=counted) as b:
        r = peersync.sync(a, b, "s")
    assert (r.sent_a_to_b, r.sent_b_to_a, r.batches) == (0, 0, 0)
    # push: the server's describe (no finish: nothing to merge); pull: its describe, nothing due
    assert counted.paths == ["/v1/scopes/s/describe", "/v1/scopes/s/describe"]
    assert items(served) == items(laptop)
