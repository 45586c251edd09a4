"""The conflict decision every adapter shares (``rules.decide``): what each
outcome leaves to write, and when a row is deferred against its policy."""

from __future__ import annotations

from peersync import Conflict, ConflictType, Outcome, Policy, Resolution
from peersync._engine.model import Value
from peersync._engine.rules import LocalState, both_deleted, decide

A, B = b"a" * 16, b"b" * 16
COLUMNS, KEY = ("id", "name", "qty"), ("id",)


def _conflict(local: dict[str, Value] | None, remote: dict[str, Value] | None) -> Conflict:
    return Conflict("s", "item", (1,), ConflictType.UPDATE_UPDATE, local, remote, (A, 3), (B, 7), 100, 200)


def test_a_builtin_policy_decides_and_the_logged_conflict_carries_its_outcome() -> None:
    d = decide(Policy.LAST_WRITER_WINS, _conflict({"id": 1, "name": "x", "qty": 1}, None), COLUMNS, KEY)
    assert d.outcome is Outcome.SOURCE
    assert d.conflict.outcome is Outcome.SOURCE
    assert d.merged is None


def test_a_merge_overlays_local_remote_and_the_callbacks_columns() -> None:
    local = {"id": 1, "name": "local", "qty": 1}
    remote = {"id": 1, "name": "remote", "qty": 2}
    d = decide(lambda c: Resolution(Outcome.MERGE, {"qty": 9}), _conflict(local, remote), COLUMNS, KEY)
    assert d.outcome is Outcome.MERGE
    assert d.merged == {"id": 1, "name": "remote", "qty": 9}
    assert d.conflict.outcome is Outcome.MERGE


def test_a_merge_over_a_deleted_side_keeps_the_live_sides_columns() -> None:
    local = {"id": 1, "name": "local", "qty": 1}
    d = decide(lambda c: Resolution(Outcome.MERGE, {"qty": 4}), _conflict(local, None), COLUMNS, KEY)
    assert d.merged == {"id": 1, "name": "local", "qty": 4}


def test_a_merge_that_changes_the_key_defers_the_row() -> None:
    row = {"id": 1, "name": "x", "qty": 1}
    d = decide(lambda c: Resolution(Outcome.MERGE, {"id": 2}), _conflict(row, row), COLUMNS, KEY)
    assert d.outcome is Outcome.DEFER
    assert d.merged is None
    assert d.conflict.outcome is Outcome.DEFER
    assert d.conflict.detail == "merged row changed the key or named unknown columns"


def test_a_merge_naming_an_unknown_column_defers_the_row() -> None:
    row = {"id": 1, "name": "x", "qty": 1}
    d = decide(lambda c: Resolution(Outcome.MERGE, {"colour": "red"}), _conflict(row, row), COLUMNS, KEY)
    assert d.outcome is Outcome.DEFER
    assert d.merged is None


def test_a_callback_that_raises_defers_the_row_and_says_why() -> None:
    def boom(c: Conflict) -> Outcome:
        raise RuntimeError("no")

    d = decide(boom, _conflict({"id": 1, "name": "x", "qty": 1}, None), COLUMNS, KEY)
    assert d.outcome is Outcome.DEFER
    assert d.conflict.detail == "callback raised RuntimeError: no"


def test_both_deleted_logs_the_tombstone_that_wins_by_last_writer() -> None:
    local = LocalState((A, 3), (A, 1), True, 100)
    c = both_deleted("s", "item", (1,), local, (B, 7), 200, wins=True)
    assert (c.type, c.outcome, c.policy) == (ConflictType.DELETE_DELETE, Outcome.SOURCE, Policy.LAST_WRITER_WINS.value)
    assert (c.local_version, c.remote_version, c.local_time, c.remote_time) == ((A, 3), (B, 7), 100, 200)
    assert both_deleted("s", "item", (1,), local, (B, 7), 200, wins=False).outcome is Outcome.DESTINATION
