"""The command line's errors beyond the basic cases of ``test_cli``: numeric
options out of range, and a ``sync`` whose pull half fails after its push
half committed (the error says exactly what stays)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

import peersync

from ..helpers import rows, write
from .test_cli import assert_error, invoke, ok, pair, run, run_main, snapshot

__all__ = ["pair"]  # the fixture, used below

HUGE = "99999999999999999999999"


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--batch-size", HUGE),
        ("--batch-size", str(2**63)),
        ("--batch-size", "0"),
        ("--batch-bytes", HUGE),
        ("--timeout", "1e400"),
        ("--timeout", "nan"),
        ("--timeout", "-1"),
        ("--timeout", HUGE),
    ],
)
def test_numeric_options_out_of_range_are_one_line_errors(
    pair: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    option: str,
    value: str,
) -> None:
    a, b = pair
    write(a, "INSERT INTO item VALUES (1, 'x', 1, 1.0)")
    before = snapshot(a, b)
    assert_error(run_main(capsys, monkeypatch, "sync", a, b, "-s", "s", option, value), option.lstrip("-"))
    assert snapshot(a, b) == before


def test_huge_batch_size_in_a_real_subprocess(pair: tuple[Path, Path]) -> None:
    a, b = pair
    write(a, "INSERT INTO item VALUES (1, 'x', 1, 1.0)")
    before = snapshot(a, b)
    assert_error(run("sync", a, b, "-s", "s", "--batch-size", HUGE, "--batch-bytes", HUGE), "batch-size")
    assert_error(run("status", a, "--timeout", "nan"), "timeout")
    assert snapshot(a, b) == before


def test_the_largest_batch_limits_are_accepted(pair: tuple[Path, Path]) -> None:
    a, b = pair
    write(a, "INSERT INTO item VALUES (1, 'x', 1, 1.0)")
    top = str(2**63 - 1)
    ok(invoke("sync", a, b, "-s", "s", "--batch-size", top, "--batch-bytes", top))
    assert rows(b, "item") == rows(a, "item")


def _pull_fails(a: Path, b: Path) -> None:
    """A has a row to push; B has one to pull, whose apply on A fails for good
    (A's own trigger names a table that does not exist)."""
    write(a, "INSERT INTO item VALUES (1, 'from a', 1, 1.0)")
    write(b, "INSERT INTO item VALUES (2, 'from b', 2, 2.0)")
    write(a, "CREATE TRIGGER audit AFTER INSERT ON item BEGIN INSERT INTO audit_log VALUES (NEW.id); END")


def test_a_pull_failure_says_the_push_half_completed(pair: tuple[Path, Path]) -> None:
    a, b = pair
    _pull_fails(a, b)
    line = assert_error(invoke("sync", a, b, "-s", "s"), "audit_log")
    assert "push half" in line and "completed" in line and "1 rows sent" in line
    assert rows(b, "item") == [(1, "from a", 1, 1.0), (2, "from b", 2, 2.0)]  # the push committed
    assert rows(a, "item") == [(1, "from a", 1, 1.0)]  # the pull changed nothing


def test_a_pull_failure_with_json_prints_what_completed(pair: tuple[Path, Path]) -> None:
    a, b = pair
    _pull_fails(a, b)
    r = invoke("sync", a, b, "-s", "s", "--json")
    assert_error(r, "push half")
    data = json.loads(r.stdout)
    assert data["completed"] is False
    assert (data["sent_a_to_b"], data["sent_b_to_a"], data["applied"]) == (1, 0, 1)
    assert "audit_log" in data["error"]
    # Once A is repaired, the next sync finishes the job and sends nothing twice.
    write(a, "CREATE TABLE audit_log (id INTEGER)")
    data = json.loads(ok(invoke("sync", a, b, "-s", "s", "--json")).stdout)
    assert (data["sent_a_to_b"], data["sent_b_to_a"], data["completed"]) == (0, 1, True)
    assert "error" not in data
    assert rows(a, "item") == rows(b, "item")


def test_a_failure_in_the_push_half_changes_nothing(pair: tuple[Path, Path]) -> None:
    a, b = pair
    write(a, "INSERT INTO item VALUES (1, 'from a', 1, 1.0)")
    write(b, "CREATE TRIGGER audit AFTER INSERT ON item BEGIN INSERT INTO audit_log VALUES (NEW.id); END")
    before = snapshot(a, b)
    r = invoke("sync", a, b, "-s", "s", "--json")
    line = assert_error(r, "audit_log")
    assert "push half" not in line and r.stdout == ""
    assert snapshot(a, b) == before
    conn = sqlite3.connect(b)
    assert conn.execute("SELECT count(*) FROM item").fetchone() == (0,)
    conn.close()


def test_migrate_of_an_unknown_scope_is_an_error_not_a_new_scope(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE note (id TEXT PRIMARY KEY, body TEXT)")
    conn.close()
    ok(invoke("init", db, "--scope", "s", "--table", "note"))
    assert_error(invoke("init", db, "--scope", "zz", "--table", "note", "--migrate"), "zz")
    with peersync.connect(db) as d:
        assert d.scopes() == ["s"]


def test_an_error_naming_a_line_break_stays_one_line(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    sqlite3.connect(db).close()
    assert_error(invoke("init", db, "--scope", "s", "--table", "no\nsuch"), "no such table")


def test_bad_arguments_to_the_api_are_typed_errors(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    sqlite3.connect(db).close()
    with pytest.raises(peersync.InvalidURL):
        peersync.connect(123)  # type: ignore[arg-type]
    with peersync.connect(db) as d, pytest.raises(peersync.TableError, match="list of names"):
        d.provision("s", "note")
