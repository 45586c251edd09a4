"""Knowledge claims only what the rows hold or beat, and a change kept out of it comes again
(docs/design.md, "Knowledge": the two rules that keep it exact; issue 6, items 1 and 2).

Each test is one short history of the model (``_model``) among three replicas A, B, C
syncing in pairs, replayed exactly: the model then checks that after quiet full rounds
every replica holds the last write of every key (and no deleted row).
"""

from __future__ import annotations

from typing import Any

from ._model import run, world

A, B, C = 0, 1, 2
# The edges of three replicas in pairs: 0 is A-B, 1 is A-C, 2 is B-C.
A_TO_B = ("session", 0, "push", 4, None, "lww")
A_TO_C = ("session", 1, "push", 4, None, "lww")
C_TO_A = ("session", 1, "pull", 4, None, "lww")
B_TO_C = ("session", 2, "push", 4, None, "lww")
C_TO_B = ("session", 2, "pull", 4, None, "lww")
OPEN, DONE, BLOCKED = 0, 1, 2  # task statuses
X_AT, Y_AT = 0, 1  # emails
U1, U2 = 0, 1  # users


def _defer(session: tuple[Any, ...]) -> tuple[Any, ...]:
    return (*session[:5], "defer")


def _replay(ops: list[tuple[Any, ...]]) -> None:
    with world(("pairs", 3)) as w:
        run(w, ops)
        w.check()


def test_identical_concurrent_values_leave_the_latest_version_everywhere() -> None:
    """C, A then B set a task's status concurrently; B's (the latest) equals C's. C hears
    B's first: it must not only learn B's version while keeping its own older one, or A's
    version, older than B's but newer than C's, wins at C alone, for good."""
    _replay([
        ("set", A, "task", 0, OPEN, "insert"), A_TO_B, A_TO_C,
        ("set", C, "task", 0, DONE, "update"),
        ("set", A, "task", 0, BLOCKED, "update"),
        ("set", B, "task", 0, DONE, "update"),
        B_TO_C, A_TO_C,
    ])  # fmt: skip


def test_concurrent_deletes_leave_no_row_behind() -> None:
    """C deletes a task, A updates it, B deletes it (the latest). C hears B's delete first:
    if it only learns it and keeps its own older tombstone, A's update brings the row back
    at C, for good."""
    _replay([
        ("set", A, "task", 0, OPEN, "insert"), A_TO_B, A_TO_C,
        ("delete", C, "task", 0),
        ("set", A, "task", 0, BLOCKED, "update"),
        ("delete", B, "task", 0),
        B_TO_C, A_TO_C,
    ])  # fmt: skip


def test_a_row_refused_by_a_unique_collision_comes_again_after_third_party_knowledge() -> None:
    """A inserts u1 and B inserts u2 with the same email. u1 fails on B twice (from C, then
    from A); meanwhile A and C tell B what each other knows, u1's versions included. Once B
    changes u2's email, u1 must still reach B."""
    _replay([
        ("set", A, "users", U1, X_AT, "insert"),
        ("set", B, "users", U2, X_AT, "insert"),
        A_TO_C, C_TO_B, C_TO_A, A_TO_B, C_TO_B,
        ("set", B, "users", U2, Y_AT, "update"),
    ])  # fmt: skip


def test_a_replica_missing_a_row_passes_on_no_knowledge_that_hides_it() -> None:
    """Found by the model test on the engine that keeps refused changes pending: in a ring of
    five, D (4) gets u1 from A (0) and A learns D's ticks; u1 fails on B (1), which still
    merges A's knowledge, D's tick of u1 included, and passes it to C (2). C has never seen
    u1, yet D's filter then skips it for C, and once C learns u1's version from D's
    knowledge nobody sends it: C never gets u1 after B changes u2's email."""
    ring = [
        ("set", A, "users", U1, X_AT, "insert"),
        ("set", B, "users", U2, X_AT, "insert"),
        ("session", 4, "pull", 4, None, "lww"),  # A -> D (edge 4 is D-A)
        ("session", 4, "push", 4, None, "lww"),  # D -> A
        ("session", 0, "push", 4, None, "lww"),  # A -> B: u1 fails on B
        ("session", 1, "push", 4, None, "lww"),  # B -> C
        ("set", B, "users", U2, Y_AT, "update"),
    ]
    with world(("ring", 5)) as w:
        run(w, ring)
        w.check()


def test_a_deferred_conflict_comes_again_after_third_party_knowledge() -> None:
    """B edits a task, then A (later). B defers the conflict twice (from C, then from A) while
    A and C tell B what each other knows, A's version included. B's older edit must not then
    win everywhere as if made knowing A's: A's comes again, and wins."""
    _replay([
        ("set", A, "task", 0, OPEN, "insert"), A_TO_B, A_TO_C,
        ("set", B, "task", 0, DONE, "update"),
        ("set", A, "task", 0, BLOCKED, "update"),
        A_TO_C, _defer(C_TO_B), C_TO_A, _defer(A_TO_B), C_TO_B,
    ])  # fmt: skip
