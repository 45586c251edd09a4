"""Adversarial histories against exact knowledge and pending changes (docs/design.md,
"Knowledge": the two rules that keep it exact): short, deterministic histories among three
to five peers, each checking convergence, no lost update under last-writer-wins and a quiet
round that sends nothing.

Writers are foreign (plain ``sqlite3``) with their clocks set explicitly, so which of two
concurrent writes is later never depends on timing.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import peersync
from peersync import Outcome
from peersync.testing import FaultyPeer

from ..helpers import at, full_rounds, peers, push, rows, sync

TASK = "CREATE TABLE task (id INTEGER PRIMARY KEY, status TEXT)"
USERS = "CREATE TABLE users (id TEXT PRIMARY KEY, email TEXT UNIQUE)"
T0 = (int(time.time()) + 86_400) * 1000 + 500  # writers' clocks: after every real-time write of the run


def pending(p: Path) -> int:
    with peersync.connect(p) as db:
        return db.status("s")[0].pending


def knowledge(p: Path) -> peersync.Knowledge:
    with peersync.connect(p) as db:
        return db.describe("s").knowledge


def defer(conflict: peersync.Conflict) -> Outcome:
    return Outcome.DEFER


# -- pending changes that lose everywhere ----------------------------------------------------------------------------
def test_a_deferred_change_that_loses_everywhere_stops_being_pending(make_db: Callable[..., Path]) -> None:
    """A's 'old' and B's later 'new' meet on C and on B, both deferred. Full rounds under last
    writer wins make 'new' win everywhere. B's row then beats A's version, so nothing is
    pending any more and B's knowledge holds A's version like every other peer's."""
    a, b, c = peers(make_db, TASK, ["task"], "abc")
    at(a, T0 + 100, "INSERT INTO task VALUES (1, 'old')")
    at(b, T0 + 200, "INSERT INTO task VALUES (1, 'new')")
    push(a, c)
    r = sync(b, c, policy=defer)
    assert r.conflicts == 2 and pending(b) == 1
    sync(b, c)  # 'new' wins on C; C's row is now B's own version, never sent back to B
    sync(c, a)  # and on A, which thus never sends 'old' to B either
    full_rounds([a, b, c])
    assert rows(a, "task") == rows(b, "task") == rows(c, "task") == [(1, "new")]
    assert full_rounds([a, b, c], 1) == 0
    assert [pending(p) for p in (a, b, c)] == [0, 0, 0]
    assert knowledge(b).contains_knowledge(knowledge(c))


def test_an_edit_on_top_of_a_winner_does_not_conflict_with_the_version_it_beat(make_db: Callable[..., Path]) -> None:
    """As above, then D, which has held A's 'old' since before, meets B's later edit 'newest'.
    B's row had beaten 'old' before that edit, as on C: 'newest' applies on D, whatever D's
    policy, exactly as it does when it reaches D through C."""
    a, b, c, d = peers(make_db, TASK, ["task"], "abcd")
    at(a, T0 + 100, "INSERT INTO task VALUES (1, 'old')")
    at(b, T0 + 200, "INSERT INTO task VALUES (1, 'new')")
    push(a, c)
    push(a, d)
    sync(b, c, policy=defer)
    sync(b, c)
    sync(c, a)
    full_rounds([a, b, c])
    at(b, T0 + 300, "UPDATE task SET status = 'newest' WHERE id = 1")
    r = push(b, d, policy="destination-wins")
    assert r.conflicts == 0
    full_rounds([a, b, c, d])
    assert [rows(p, "task") for p in (a, b, c, d)] == [[(1, "newest")]] * 4


# -- a failed row whose source is never met again --------------------------------------------------------------------
def test_a_failed_row_reaches_a_spoke_through_the_hub(make_db: Callable[..., Path]) -> None:
    """Spoke B gets u1 from A once, where it collides with B's u2; from then on B syncs only
    with hub D, which holds u1. Once B frees the email, u1 arrives from D."""
    a, b, d = peers(make_db, USERS, ["users"], "abd")
    at(a, T0 + 100, "INSERT INTO users VALUES ('u1', 'x@example.org')")
    at(b, T0 + 150, "INSERT INTO users VALUES ('u2', 'x@example.org')")
    assert push(a, b).errors == 1
    push(a, d)
    assert sync(d, b).errors == 2  # u1 fails on B again, u2 on D
    at(b, T0 + 300, "UPDATE users SET email = 'y@example.org' WHERE id = 'u2'")
    for _ in range(2):
        sync(d, b)
    want = [("u1", "x@example.org"), ("u2", "y@example.org")]
    assert rows(b, "users") == rows(d, "users") == want
    assert pending(b) == pending(d) == 0
    sync(a, d)
    assert rows(a, "users") == want
    assert full_rounds([a, b, d], 1) == 0


def test_a_failed_row_reaches_a_spoke_that_never_met_the_hub_before(make_db: Callable[..., Path]) -> None:
    """As above, but B meets D for the first time only after freeing the email."""
    a, b, d = peers(make_db, USERS, ["users"], "abd")
    at(a, T0 + 100, "INSERT INTO users VALUES ('u1', 'x@example.org')")
    at(b, T0 + 150, "INSERT INTO users VALUES ('u2', 'x@example.org')")
    assert push(a, b).errors == 1
    push(a, d)
    at(b, T0 + 300, "UPDATE users SET email = 'y@example.org' WHERE id = 'u2'")
    sync(d, b)
    want = [("u1", "x@example.org"), ("u2", "y@example.org")]
    assert rows(b, "users") == rows(d, "users") == want
    assert pending(b) == 0
    sync(a, d)
    assert full_rounds([a, b, d], 1) == 0
    assert rows(a, "users") == want


# -- pending changes across interrupted sessions ---------------------------------------------------------------------
@pytest.mark.parametrize("fault", ["interrupt", "lose_reply", "duplicate"])
@pytest.mark.parametrize("cut", [0, 1])
def test_a_failed_row_survives_interrupted_sessions(make_db: Callable[..., Path], fault: str, cut: int) -> None:
    """u1 collides on B; sessions to B break after each batch (one row per batch) or lose the
    reply after committing. u1 still arrives once the email is free, and nothing else is lost."""
    a, b, c = peers(make_db, USERS, ["users"], "abc")
    at(a, T0 + 100, "INSERT INTO users VALUES ('u0', 'w@example.org')")
    at(a, T0 + 110, "INSERT INTO users VALUES ('u1', 'x@example.org')")
    at(a, T0 + 120, "INSERT INTO users VALUES ('u3', 'z@example.org')")
    at(b, T0 + 150, "INSERT INTO users VALUES ('u2', 'x@example.org')")
    push(a, c)
    for src in (a, c, a):
        with peersync.connect(src) as x, peersync.connect(b) as y:
            faulty = {
                "interrupt": lambda: FaultyPeer(y, interrupt_after=cut),
                "lose_reply": lambda: FaultyPeer(y, lose_reply_after=cut),
                "duplicate": lambda: FaultyPeer(y, duplicate=True),
            }[fault]()
            with contextlib.suppress(peersync.TransportError):
                peersync.sync(x, faulty, "s", direction="push", batch_size=1)
    assert pending(b) == (0 if (fault, cut) == ("interrupt", 0) else 1)
    at(b, T0 + 300, "UPDATE users SET email = 'y@example.org' WHERE id = 'u2'")
    full_rounds([a, b, c])
    want = [("u0", "w@example.org"), ("u1", "x@example.org"), ("u2", "y@example.org"), ("u3", "z@example.org")]
    assert rows(a, "users") == rows(b, "users") == rows(c, "users") == want
    assert [pending(p) for p in (a, b, c)] == [0, 0, 0]
    assert full_rounds([a, b, c], 1) == 0


# -- deferred conflicts and built-in policies ------------------------------------------------------------------------
@pytest.mark.parametrize("later", ["source-wins", "destination-wins", "last-writer-wins"])
def test_a_deferred_conflict_is_decided_by_the_next_policy_and_converges(
    make_db: Callable[..., Path], later: str
) -> None:
    """B defers A's edit; C learns both. A later session under another policy decides, and
    every peer ends with the same row, with nothing pending and a quiet round."""
    a, b, c = peers(make_db, TASK, ["task"], "abc")
    at(a, T0 + 100, "INSERT INTO task VALUES (1, 'open')")
    push(a, b)
    push(a, c)
    at(b, T0 + 200, "UPDATE task SET status = 'b' WHERE id = 1")
    at(a, T0 + 300, "UPDATE task SET status = 'a' WHERE id = 1")
    assert push(a, b, policy=defer).sessions[0].deferred == 1
    push(b, c, policy=later)
    push(a, c, policy=later)
    sync(c, b, policy=later)
    sync(a, b, policy=later)
    full_rounds([a, b, c], policy=later)
    assert rows(a, "task") == rows(b, "task") == rows(c, "task")
    assert [pending(p) for p in (a, b, c)] == [0, 0, 0]
    assert full_rounds([a, b, c], 1, policy=later) == 0
    if later == "last-writer-wins":
        assert rows(a, "task") == [(1, "a")]


# -- identical content meets a third version under every policy ------------------------------------------------------
@pytest.mark.parametrize("policy", ["source-wins", "destination-wins", "last-writer-wins"])
def test_identical_content_and_a_third_version_converge_under_every_policy(
    make_db: Callable[..., Path], policy: str
) -> None:
    a, b, c, d = peers(make_db, TASK, ["task"], "abcd")
    at(a, T0 + 100, "INSERT INTO task VALUES (1, 'open')")
    for p in (b, c, d):
        push(a, p)
    at(c, T0 + 200, "UPDATE task SET status = 'done' WHERE id = 1")
    at(a, T0 + 300, "UPDATE task SET status = 'blocked' WHERE id = 1")
    at(b, T0 + 400, "UPDATE task SET status = 'done' WHERE id = 1")
    push(b, c, policy=policy)
    push(a, c, policy=policy)
    push(c, d, policy=policy)
    push(b, d, policy=policy)
    push(a, d, policy=policy)
    full_rounds([a, b, c, d], policy=policy)
    assert rows(a, "task") == rows(b, "task") == rows(c, "task") == rows(d, "task")
    assert full_rounds([a, b, c, d], 1, policy=policy) == 0
    if policy == "last-writer-wins":
        assert rows(a, "task") == [(1, "done")]


# -- delete/delete, then a re-insert ---------------------------------------------------------------------------------
def test_a_reinsert_after_concurrent_deletes_wins_everywhere(make_db: Callable[..., Path]) -> None:
    """B and C delete concurrently, A updates in between; then C re-inserts the key (the latest
    write): the re-inserted row is on every peer, and no tombstone or update brings back
    another state."""
    a, b, c = peers(make_db, TASK, ["task"], "abc")
    at(a, T0 + 100, "INSERT INTO task VALUES (1, 'open')")
    push(a, b)
    push(a, c)
    at(c, T0 + 200, "DELETE FROM task WHERE id = 1")
    at(a, T0 + 300, "UPDATE task SET status = 'blocked' WHERE id = 1")
    at(b, T0 + 400, "DELETE FROM task WHERE id = 1")
    push(b, c)
    at(c, T0 + 500, "INSERT INTO task VALUES (1, 'again')")
    push(a, c)
    push(c, b)
    push(a, b)
    full_rounds([a, b, c])
    assert rows(a, "task") == rows(b, "task") == rows(c, "task") == [(1, "again")]
    assert full_rounds([a, b, c], 1) == 0


def test_concurrent_deletes_then_a_reinsert_on_the_loser_of_the_tombstones(make_db: Callable[..., Path]) -> None:
    """C deletes first, B later; C learns B's tombstone (it wins), then re-inserts. A, which
    still holds the row, and B must both end with the re-inserted row."""
    a, b, c = peers(make_db, TASK, ["task"], "abc")
    at(a, T0 + 100, "INSERT INTO task VALUES (1, 'open')")
    push(a, b)
    push(a, c)
    at(c, T0 + 200, "DELETE FROM task WHERE id = 1")
    at(b, T0 + 300, "DELETE FROM task WHERE id = 1")
    push(c, b)
    push(b, c)
    at(c, T0 + 400, "INSERT INTO task VALUES (1, 'again')")
    push(c, a)
    push(b, a)
    full_rounds([a, b, c])
    assert rows(a, "task") == rows(b, "task") == rows(c, "task") == [(1, "again")]
    assert full_rounds([a, b, c], 1) == 0


# -- UNIQUE collisions resolved by a callback ------------------------------------------------------------------------
def test_a_merged_row_that_collides_again_stays_one_pending_error_then_applies(make_db: Callable[..., Path]) -> None:
    """u1 collides on B with u2; the callback renames u1's email to one that u3 holds on B.
    The merged row fails too: one error entry on B, u1 pending; once u3 moves, u1 arrives."""
    a, b = peers(make_db, USERS, ["users"], "ab")
    at(a, T0 + 100, "INSERT INTO users VALUES ('u1', 'x@example.org')")
    at(
        b,
        T0 + 150,
        "INSERT INTO users VALUES ('u2', 'x@example.org')",
        "INSERT INTO users VALUES ('u3', 'y@example.org')",
    )

    def rename(c: peersync.Conflict) -> peersync.Resolution | Outcome:
        if c.type is peersync.ConflictType.ERROR and c.remote_row is not None and c.remote_row["id"] == "u1":
            return peersync.Resolution(Outcome.MERGE, row={"email": "y@example.org"})
        return Outcome.DEFER

    for _ in range(3):
        push(a, b, policy=rename)
    with peersync.connect(b) as db:
        errors = [c for c in db.conflicts("s") if c.type is peersync.ConflictType.ERROR]
        assert [c.key for c in errors] == [("u1",)]
        assert db.status("s")[0].pending == 1
    at(b, T0 + 300, "UPDATE users SET email = 'z@example.org' WHERE id = 'u3'")
    push(a, b, policy=rename)
    push(a, b, policy=rename)
    assert ("u1", "y@example.org") in rows(b, "users")
    assert pending(b) == 0
    full_rounds([a, b], policy=rename)
    assert rows(a, "users") == rows(b, "users")
    assert full_rounds([a, b], 1, policy=rename) == 0


def test_collisions_evicted_by_the_incoming_row_converge_among_three(make_db: Callable[..., Path]) -> None:
    """Three peers each create a user with the same email; a callback keeps the incoming row
    and evicts the colliding one. All peers end with the same single row."""
    a, b, c = peers(make_db, USERS, ["users"], "abc")
    at(a, T0 + 100, "INSERT INTO users VALUES ('ua', 'x@example.org')")
    at(b, T0 + 200, "INSERT INTO users VALUES ('ub', 'x@example.org')")
    at(c, T0 + 300, "INSERT INTO users VALUES ('uc', 'x@example.org')")

    def incoming(conflict: peersync.Conflict) -> Outcome:
        return Outcome.SOURCE

    push(a, b, policy=incoming)
    push(c, a, policy=incoming)
    push(b, c, policy=incoming)
    full_rounds([a, b, c], policy=incoming)
    assert rows(a, "users") == rows(b, "users") == rows(c, "users")
    assert len(rows(a, "users")) == 1
    assert [pending(p) for p in (a, b, c)] == [0, 0, 0]
    assert full_rounds([a, b, c], 1, policy=incoming) == 0


# -- a pending change is not released by a concurrent version --------------------------------------------------------
def test_a_failed_later_edit_still_wins_after_an_earlier_concurrent_edit_applies(make_db: Callable[..., Path]) -> None:
    """A's edit of u1 (the latest) fails on B; C's earlier concurrent edit of u1 applies on B
    meanwhile. That must not release A's edit: once it can apply, it wins on B and everywhere."""
    a, b, c = peers(make_db, USERS, ["users"], "abc")
    at(a, T0 + 100, "INSERT INTO users VALUES ('u1', 'a@example.org')")
    full_rounds([a, b, c], 1)
    at(b, T0 + 150, "INSERT INTO users VALUES ('u2', 'x@example.org')")
    at(c, T0 + 300, "UPDATE users SET email = 'c@example.org' WHERE id = 'u1'")
    at(a, T0 + 400, "UPDATE users SET email = 'x@example.org' WHERE id = 'u1'")
    assert push(a, b).errors == 1
    push(c, b)
    assert pending(b) == 1
    push(b, c)
    push(b, a)
    at(b, T0 + 500, "UPDATE users SET email = 'y@example.org' WHERE id = 'u2'")
    full_rounds([a, b, c])
    want = [("u1", "x@example.org"), ("u2", "y@example.org")]
    assert rows(a, "users") == rows(b, "users") == rows(c, "users") == want
    assert [pending(p) for p in (a, b, c)] == [0, 0, 0]
    assert full_rounds([a, b, c], 1) == 0


TAGS = "CREATE TABLE tag (name TEXT PRIMARY KEY COLLATE NOCASE, color TEXT UNIQUE)"


def test_a_pending_nocase_key_is_released_by_its_row_in_another_letter_case(make_db: Callable[..., Path]) -> None:
    a, b = peers(make_db, TAGS, ["tag"], "ab")
    at(a, T0 + 100, "INSERT INTO tag VALUES ('urgent', 'red')")
    at(b, T0 + 150, "INSERT INTO tag VALUES ('other', 'red')")
    assert push(a, b).errors == 1
    at(a, T0 + 200, "UPDATE tag SET name = 'URGENT' WHERE name = 'urgent'")
    at(b, T0 + 300, "UPDATE tag SET color = 'blue' WHERE name = 'other'")
    push(a, b)
    assert rows(b, "tag") == [("other", "blue"), ("URGENT", "red")]
    assert pending(b) == 0
    sync(a, b)
    assert rows(a, "tag") == rows(b, "tag")
    assert sync(a, b).sent_a_to_b + sync(a, b).sent_b_to_a == 0


def test_a_row_failing_from_several_sources_is_one_error_entry(make_db: Callable[..., Path]) -> None:
    a, b, c = peers(make_db, USERS, ["users"], "abc")
    at(a, T0 + 100, "INSERT INTO users VALUES ('u1', 'x@example.org')")
    at(b, T0 + 150, "INSERT INTO users VALUES ('u2', 'x@example.org')")
    push(a, c)
    for src in (a, c, a, c):
        assert push(src, b).errors == 1
    at(a, T0 + 200, "UPDATE users SET email = 'x@example.org', id = 'u1' WHERE id = 'u1'")
    at(c, T0 + 250, "INSERT INTO users VALUES ('u3', 'z@example.org')")
    push(c, b)
    with peersync.connect(b) as db:
        errors = [x for x in db.conflicts("s") if x.type is peersync.ConflictType.ERROR]
    assert [x.key for x in errors] == [("u1",)]
    assert pending(b) == 1


@pytest.mark.parametrize("delete_at", [300, 500])
def test_a_failed_edit_and_a_concurrent_delete_end_by_last_writer(make_db: Callable[..., Path], delete_at: int) -> None:
    """A's edit of u1 (at 400) fails on B; C deletes u1 concurrently, before or after it. The
    later of the two wins everywhere: no resurrection of a later delete, no lost later edit."""
    a, b, c = peers(make_db, USERS, ["users"], "abc")
    at(a, T0 + 100, "INSERT INTO users VALUES ('u1', 'a@example.org')")
    full_rounds([a, b, c], 1)
    at(b, T0 + 150, "INSERT INTO users VALUES ('u2', 'x@example.org')")
    at(a, T0 + 400, "UPDATE users SET email = 'x@example.org' WHERE id = 'u1'")
    at(c, T0 + delete_at, "DELETE FROM users WHERE id = 'u1'")
    assert push(a, b).errors == 1
    push(c, b)
    at(b, T0 + 600, "UPDATE users SET email = 'y@example.org' WHERE id = 'u2'")
    full_rounds([a, b, c])
    want = [("u2", "y@example.org")] if delete_at > 400 else [("u1", "x@example.org"), ("u2", "y@example.org")]
    assert rows(a, "users") == rows(b, "users") == rows(c, "users") == want
    assert [pending(p) for p in (a, b, c)] == [0, 0, 0]
    assert full_rounds([a, b, c], 1) == 0


def test_a_failed_insert_beaten_by_the_destinations_own_later_insert_stops_being_pending(
    make_db: Callable[..., Path],
) -> None:
    a, b = peers(make_db, USERS, ["users"], "ab")
    at(a, T0 + 100, "INSERT INTO users VALUES ('u1', 'x@example.org')")
    at(b, T0 + 150, "INSERT INTO users VALUES ('u2', 'x@example.org')")
    assert push(a, b).errors == 1
    at(b, T0 + 200, "INSERT INTO users VALUES ('u1', 'y@example.org')")
    push(b, a)  # B's later u1 wins on A before A sends its own again
    full_rounds([a, b])
    assert rows(a, "users") == rows(b, "users") == [("u1", "y@example.org"), ("u2", "x@example.org")]
    assert full_rounds([a, b], 1) == 0
    assert pending(b) == 0


def test_a_beaten_pending_change_does_not_make_every_quiet_session_rescan(make_db: Callable[..., Path]) -> None:
    a, b = peers(make_db, USERS, ["users"], "ab")
    at(a, T0 + 100, "INSERT INTO users VALUES ('u1', 'x@example.org')")
    at(b, T0 + 150, "INSERT INTO users VALUES ('u2', 'x@example.org')")
    push(a, b)
    at(b, T0 + 200, "INSERT INTO users VALUES ('u1', 'y@example.org')")
    push(b, a)
    at(a, T0 + 300, *(f"INSERT INTO users VALUES ('n{i}', 'n{i}@example.org')" for i in range(20)))
    sync(a, b)
    quiet = sync(a, b)
    assert quiet.sent_a_to_b == quiet.sent_b_to_a == 0
    assert quiet.batches == 0


def test_the_same_conflict_merged_on_two_peers_converges_quietly(make_db: Callable[..., Path]) -> None:
    """A and B edit concurrently; B and C each merge the same two versions with a deterministic
    callback. Their merged rows are equal: every peer ends with that row and a round is quiet."""
    a, b, c = peers(make_db, TASK, ["task"], "abc")
    at(a, T0 + 100, "INSERT INTO task VALUES (1, 'open')")
    full_rounds([a, b, c], 1)
    at(a, T0 + 200, "UPDATE task SET status = 'a' WHERE id = 1")
    at(b, T0 + 300, "UPDATE task SET status = 'b' WHERE id = 1")

    def merge(conflict: peersync.Conflict) -> peersync.Resolution:
        values = sorted({str((row or {}).get("status")) for row in (conflict.local_row, conflict.remote_row)})
        return peersync.Resolution(Outcome.MERGE, row={"status": "+".join(values)})

    push(a, c)
    push(b, c, policy=merge)
    push(a, b, policy=merge)
    full_rounds([a, b, c], policy=merge)
    assert rows(a, "task") == rows(b, "task") == rows(c, "task") == [(1, "a+b")]
    assert full_rounds([a, b, c], 1, policy=merge) == 0


# -- a session that keeps a row out still learns what its rows beat ----------------------------------------------------
BOTH = USERS + ";\n" + TASK


@pytest.mark.parametrize("relay", [False, True])
@pytest.mark.parametrize("policy", ["last-writer-wins", "destination-wins"])
def test_a_row_kept_out_does_not_make_later_edits_conflict_with_versions_they_beat(
    make_db: Callable[..., Path], policy: str, relay: bool
) -> None:
    """u1 can never apply on B (its email collides with B's u2, and no callback resolves it).
    C edits task 1 twice (v1, then v2); D got v1, A got v2, and B gets v2 from A in a session
    that keeps u1 out. B's own later edit v3 was made on top of v2, which superseded v1:
    it applies on D without a conflict, under any policy, directly or through E."""
    a, b, c, d, e = peers(make_db, BOTH, ["users", "task"], "abcde")
    at(a, T0 + 100, "INSERT INTO users VALUES ('u1', 'x@example.org')")
    at(b, T0 + 110, "INSERT INTO users VALUES ('u2', 'x@example.org')")
    at(c, T0 + 200, "INSERT INTO task VALUES (1, 'v1')")
    push(c, d)
    at(c, T0 + 300, "UPDATE task SET status = 'v2' WHERE id = 1")
    push(c, a)
    assert push(a, b).errors == 1
    assert rows(b, "task") == [(1, "v2")]
    at(b, T0 + 400, "UPDATE task SET status = 'v3' WHERE id = 1")
    if relay:
        assert push(b, e, policy=policy).conflicts == 0
    r = push(e if relay else b, d, policy=policy)
    assert r.conflicts == 0
    assert rows(d, "task") == [(1, "v3")]
