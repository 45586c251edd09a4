"""Triage, classification and resolution of incoming changes: pure functions."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from peersync import Conflict, ConflictType, Knowledge, Outcome, Policy, Resolution
from peersync._engine.rules import Action, LocalState, classify, policy_name, remote_wins_by_time, resolve, triage

SRC = b"S" * 16  # the source of the incoming change
DST = b"D" * 16  # the destination, whose row is local
P3 = b"3" * 16
LOW = b"\x01" * 16
HIGH = b"\xfe" * 16
T0 = 1_700_000_000_000


def local(
    version: tuple[bytes, int] = (DST, 5), creation: tuple[bytes, int] | None = None, deleted: bool = False
) -> LocalState:
    return LocalState(version=version, creation=creation or version, deleted=deleted, time=T0)


# -- triage ------------------------------------------------------------------------------


def test_skip_known() -> None:
    known = Knowledge.from_ranges({SRC: [(1, 10)]})
    made_with = Knowledge.from_ranges({DST: [(1, 100)]})
    # Known wins over everything else: with or without a local row.
    assert triage((SRC, 7), None, made_with, known) is Action.SKIP_KNOWN
    assert triage((SRC, 7), local(), made_with, known) is Action.SKIP_KNOWN
    assert triage((SRC, 7), local(), Knowledge.empty(), known) is Action.SKIP_KNOWN


def test_apply_when_no_local_row() -> None:
    assert triage((SRC, 11), None, Knowledge.empty(), Knowledge.from_ranges({SRC: [(1, 10)]})) is Action.APPLY


def test_apply_when_local_version_in_made_with() -> None:
    made_with = Knowledge.from_ranges({DST: [(1, 5)], SRC: [(1, 20)]})
    assert triage((SRC, 20), local((DST, 5)), made_with, Knowledge.empty()) is Action.APPLY
    # The local version may come from a third replica, known to the source through an exception range.
    made_with = made_with.add(P3, 40)
    assert triage((SRC, 20), local((P3, 40)), made_with, Knowledge.empty()) is Action.APPLY


def test_conflict_otherwise() -> None:
    made_with = Knowledge.from_ranges({DST: [(1, 4), (6, 9)], SRC: [(1, 20)]})
    known = Knowledge.from_ranges({SRC: [(1, 10)]})
    assert triage((SRC, 20), local((DST, 5)), made_with, known) is Action.CONFLICT  # in made_with's hole
    assert triage((SRC, 20), local((DST, 10)), made_with, known) is Action.CONFLICT  # past it
    assert triage((SRC, 20), local((P3, 1)), made_with, known) is Action.CONFLICT  # unknown replica
    # A tombstone is a local row like any other.
    assert triage((SRC, 20), local((DST, 10), deleted=True), made_with, known) is Action.CONFLICT


# -- classify ----------------------------------------------------------------------------

# The source knew the destination's creation (DST, 1) but not its update (DST, 5).
MADE_WITH = Knowledge.from_ranges({DST: [(1, 1)], SRC: [(1, 30)]})
# The destination knows the source's creation (SRC, 2) but not its update.
KNOWN = Knowledge.from_ranges({SRC: [(1, 2)], DST: [(1, 5)]})


def test_update_update() -> None:
    state = local((DST, 5), creation=(DST, 1))
    assert classify(state, False, (DST, 1), MADE_WITH, KNOWN) is ConflictType.UPDATE_UPDATE
    state = local((DST, 5), creation=(SRC, 2))
    assert classify(state, False, (SRC, 2), MADE_WITH, KNOWN) is ConflictType.UPDATE_UPDATE


def test_update_update_when_only_one_side_knew_the_other_creation() -> None:
    # The source knew the local creation; the destination not the remote one: still update/update.
    assert classify(local((DST, 5), (DST, 1)), False, (P3, 9), MADE_WITH, KNOWN) is ConflictType.UPDATE_UPDATE
    # The destination knew the remote creation; the source not the local one.
    assert classify(local((DST, 5), (DST, 4)), False, (SRC, 2), MADE_WITH, KNOWN) is ConflictType.UPDATE_UPDATE


def test_update_delete_is_local_update_remote_delete() -> None:
    state = local((DST, 5), creation=(DST, 1))
    assert classify(state, True, (DST, 1), MADE_WITH, KNOWN) is ConflictType.UPDATE_DELETE
    assert ConflictType.UPDATE_DELETE.value == "update/delete"


def test_delete_update_is_local_delete_remote_update() -> None:
    state = local((DST, 5), creation=(DST, 1), deleted=True)
    assert classify(state, False, (DST, 1), MADE_WITH, KNOWN) is ConflictType.DELETE_UPDATE
    assert ConflictType.DELETE_UPDATE.value == "delete/update"


def test_insert_insert_when_neither_knew_the_other_creation() -> None:
    # Both created the same key: (DST, 4) unknown to the source, (SRC, 25) unknown here.
    state = local((DST, 4), creation=(DST, 4))
    assert classify(state, False, (SRC, 25), MADE_WITH, KNOWN) is ConflictType.INSERT_INSERT
    # Later updates on both sides do not hide that the key was made twice.
    state = local((DST, 5), creation=(DST, 4))
    assert classify(state, False, (SRC, 25), MADE_WITH, KNOWN) is ConflictType.INSERT_INSERT


def test_delete_delete() -> None:
    state = local((DST, 5), creation=(DST, 1), deleted=True)
    assert classify(state, True, (DST, 1), MADE_WITH, KNOWN) is ConflictType.DELETE_DELETE
    # Even for a key made twice: both sides deleted it, nothing to choose.
    state = local((DST, 4), creation=(DST, 4), deleted=True)
    assert classify(state, True, (SRC, 25), MADE_WITH, KNOWN) is ConflictType.DELETE_DELETE


def test_every_conflict_type_is_named_from_the_destination_side() -> None:
    assert {t.value for t in ConflictType} == {
        "update/update",
        "update/delete",
        "delete/update",
        "insert/insert",
        "delete/delete",
        "error",
    }


# -- last writer wins -------------------------------------------------------------------

VERSIONS = [(LOW, 1), (LOW, 7), (HIGH, 1), (HIGH, 7), (SRC, 3)]
TIMES = [T0 - 1, T0, T0 + 1]


def test_later_change_wins() -> None:
    assert remote_wins_by_time(T0, (HIGH, 9), T0 + 1, (LOW, 1))
    assert not remote_wins_by_time(T0 + 1, (LOW, 1), T0, (HIGH, 9))


def test_time_tie_broken_by_replica_then_tick() -> None:
    assert remote_wins_by_time(T0, (LOW, 9), T0, (HIGH, 1))
    assert not remote_wins_by_time(T0, (HIGH, 1), T0, (LOW, 9))
    assert remote_wins_by_time(T0, (LOW, 1), T0, (LOW, 2))
    assert not remote_wins_by_time(T0, (LOW, 2), T0, (LOW, 1))


def test_same_version_never_wins() -> None:
    assert not remote_wins_by_time(T0, (LOW, 1), T0, (LOW, 1))


def test_exactly_one_side_wins_whichever_is_local() -> None:
    sides = list(itertools.product(TIMES, VERSIONS))
    for (t1, v1), (t2, v2) in itertools.product(sides, sides):
        if v1 == v2:
            continue
        at_1 = remote_wins_by_time(t1, v1, t2, v2)  # replica holding v1 receives v2
        at_2 = remote_wins_by_time(t2, v2, t1, v1)  # replica holding v2 receives v1
        assert at_1 != at_2, (t1, v1, t2, v2)
        assert remote_wins_by_time(t1, v1, t2, v2) == at_1  # deterministic


# -- resolve ---------------------------------------------------------------------------


def conflict(
    local_time: int = T0,
    remote_time: int = T0 + 1,
    local_version: tuple[bytes, int] = (DST, 5),
    remote_version: tuple[bytes, int] = (SRC, 9),
    type: ConflictType = ConflictType.UPDATE_UPDATE,
) -> Conflict:
    return Conflict(
        scope="s",
        table="item",
        key=(1,),
        type=type,
        local_row={"id": 1, "name": "local"},
        remote_row={"id": 1, "name": "remote"},
        local_version=local_version,
        remote_version=remote_version,
        local_time=local_time,
        remote_time=remote_time,
    )


def test_source_and_destination_wins() -> None:
    for c in (conflict(), conflict(local_time=T0 + 10)):
        assert resolve(Policy.SOURCE_WINS, c) == Resolution(Outcome.SOURCE)
        assert resolve(Policy.DESTINATION_WINS, c) == Resolution(Outcome.DESTINATION)


@pytest.mark.parametrize("ctype", list(ConflictType))
def test_fixed_policies_apply_to_every_type(ctype: ConflictType) -> None:
    assert resolve(Policy.SOURCE_WINS, conflict(type=ctype)).outcome is Outcome.SOURCE
    assert resolve(Policy.DESTINATION_WINS, conflict(type=ctype)).outcome is Outcome.DESTINATION


def test_last_writer_wins() -> None:
    lww = Policy.LAST_WRITER_WINS
    assert resolve(lww, conflict(local_time=T0, remote_time=T0 + 1)) == Resolution(Outcome.SOURCE)
    assert resolve(lww, conflict(local_time=T0 + 1, remote_time=T0)) == Resolution(Outcome.DESTINATION)
    # Same time: the higher replica id wins.
    assert resolve(lww, conflict(T0, T0, (LOW, 9), (HIGH, 1))).outcome is Outcome.SOURCE
    assert resolve(lww, conflict(T0, T0, (HIGH, 1), (LOW, 9))).outcome is Outcome.DESTINATION


def test_last_writer_wins_picks_the_same_row_on_both_replicas() -> None:
    for (t1, v1), (t2, v2) in itertools.product(itertools.product(TIMES, VERSIONS), repeat=2):
        if v1 == v2:
            continue
        at_1 = resolve(Policy.LAST_WRITER_WINS, conflict(t1, t2, v1, v2)).outcome
        at_2 = resolve(Policy.LAST_WRITER_WINS, conflict(t2, t1, v2, v1)).outcome
        winner_1 = v2 if at_1 is Outcome.SOURCE else v1
        winner_2 = v1 if at_2 is Outcome.SOURCE else v2
        assert winner_1 == winner_2, (t1, v1, t2, v2)


@pytest.mark.parametrize(
    "answer",
    [
        Resolution(Outcome.SOURCE),
        Resolution(Outcome.DESTINATION),
        Resolution(Outcome.DEFER),
        Resolution(Outcome.MERGE, {"id": 1, "name": "merged"}),
    ],
    ids=lambda r: r.outcome.value,
)
def test_callback_returning_a_resolution(answer: Resolution) -> None:
    seen: list[Conflict] = []

    def handler(c: Conflict) -> Resolution:
        seen.append(c)
        return answer

    c = conflict()
    assert resolve(handler, c) is answer
    assert seen == [c]


@pytest.mark.parametrize("outcome", [Outcome.SOURCE, Outcome.DESTINATION, Outcome.DEFER])
def test_callback_returning_an_outcome(outcome: Outcome) -> None:
    assert resolve(lambda c: outcome, conflict()) == Resolution(outcome)


@pytest.mark.parametrize(
    "answer", [None, "source", 1, True, {"outcome": "source"}, Policy.SOURCE_WINS, (Outcome.SOURCE,)], ids=repr
)
def test_callback_returning_garbage_is_a_type_error(answer: Any) -> None:
    with pytest.raises(TypeError, match="callback"):
        resolve(lambda c: answer, conflict())


@pytest.mark.parametrize("outcome", [Outcome.MERGE, Outcome.FAILED])
def test_callback_returning_merge_or_failed_outcome_is_a_type_error(outcome: Outcome) -> None:
    # resolve()'s contract: "an Outcome other than MERGE and FAILED. Anything else raises TypeError."
    with pytest.raises(TypeError):
        resolve(lambda c: outcome, conflict())


def test_callback_exceptions_propagate() -> None:
    def handler(c: Conflict) -> Outcome:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        resolve(handler, conflict())


def test_policy_name() -> None:
    def my_handler(c: Conflict) -> Outcome:
        return Outcome.SOURCE

    assert policy_name(Policy.LAST_WRITER_WINS) == "last-writer-wins"
    assert policy_name(Policy.SOURCE_WINS) == "source-wins"
    assert policy_name(my_handler).startswith("callback:")
    assert policy_name(my_handler).endswith("my_handler")


# -- Resolution validation ------------------------------------------------------------


def test_merge_needs_a_row() -> None:
    with pytest.raises(ValueError):
        Resolution(Outcome.MERGE)
    assert Resolution(Outcome.MERGE, {"id": 1}).row == {"id": 1}
    assert Resolution(Outcome.MERGE, {}).row == {}


@pytest.mark.parametrize("outcome", [Outcome.SOURCE, Outcome.DESTINATION, Outcome.DEFER])
def test_only_merge_carries_a_row(outcome: Outcome) -> None:
    assert Resolution(outcome).row is None
    with pytest.raises(ValueError):
        Resolution(outcome, {"id": 1})


def test_failed_is_not_a_choice() -> None:
    with pytest.raises(ValueError):
        Resolution(Outcome.FAILED)
    with pytest.raises(ValueError):
        Resolution(Outcome.FAILED, {"id": 1})


def test_resolution_is_frozen() -> None:
    r = Resolution(Outcome.SOURCE)
    with pytest.raises(AttributeError):
        r.outcome = Outcome.DESTINATION  # type: ignore[misc]
