"""Peers compare scopes by what columns mean: spellings of one type sync,
different types are refused, and scopes stored under the old affinity
fingerprint keep working."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

import peersync

from ..helpers import peers, rows, sync, write

MakeDb = Callable[..., Path]


def _provisioned(make_db: MakeDb, name: str, ddl: str) -> Path:
    path = make_db(name, ddl)
    with peersync.connect(path) as db:
        db.provision("s", ["t"])
    return path


def _fingerprint(path: Path) -> str:
    with peersync.connect(path) as db:
        (st,) = db.status("s")
    return st.fingerprint


def test_peers_that_spell_column_types_differently_sync(make_db: MakeDb) -> None:
    a = _provisioned(make_db, "a", "CREATE TABLE t (id INTEGER PRIMARY KEY, n INT, s VARCHAR(20), x NUMERIC)")
    b = _provisioned(make_db, "b", "CREATE TABLE t (id BIGINT PRIMARY KEY, n BIGINT, s TEXT, x DECIMAL(10,2))")
    assert _fingerprint(a) == _fingerprint(b)
    write(a, "INSERT INTO t VALUES (1, 7, 'from a', 1.5)")
    write(b, "INSERT INTO t VALUES (2, 8, 'from b, longer than twenty characters', 3)")
    r = sync(a, b)
    assert (r.sent_a_to_b, r.sent_b_to_a, r.errors) == (1, 1, 0)
    assert (
        rows(a, "t")
        == rows(b, "t")
        == [
            (1, 7, "from a", 1.5),
            (2, 8, "from b, longer than twenty characters", 3),  # SQLite enforces no length
        ]
    )


@pytest.mark.parametrize(("here", "there"), [("TEXT", "BLOB"), ("INTEGER", "REAL"), ("DATE", "TEXT")])
def test_peers_whose_columns_mean_different_things_refuse_each_other(make_db: MakeDb, here: str, there: str) -> None:
    a = _provisioned(make_db, "a", f"CREATE TABLE t (id INTEGER PRIMARY KEY, v {here})")
    b = _provisioned(make_db, "b", f"CREATE TABLE t (id INTEGER PRIMARY KEY, v {there})")
    write(a, "INSERT INTO t VALUES (1, '2024-01-01')")
    with pytest.raises(peersync.SchemaMismatch):
        sync(a, b)
    assert rows(b, "t") == []


def test_a_retype_that_keeps_the_affinity_but_changes_the_meaning_needs_a_migration(make_db: MakeDb) -> None:
    """DATE and DATETIME are both NUMERIC to SQLite, but a date is not a timestamp."""
    a = _provisioned(make_db, "a", "CREATE TABLE t (id INTEGER PRIMARY KEY, at DATE)")
    write(
        a,
        "CREATE TABLE t2 (id INTEGER PRIMARY KEY, at DATETIME)",
        "INSERT INTO t2 SELECT * FROM t",
        "DROP TABLE t",
        "ALTER TABLE t2 RENAME TO t",
    )
    with peersync.connect(a) as db, pytest.raises(peersync.SchemaMismatch):
        db.status("s")
    with peersync.connect(a) as db:
        assert db.migrate("s").migrated
        (st,) = db.status("s")
    b = _provisioned(make_db, "b", "CREATE TABLE t (id INTEGER PRIMARY KEY, at TIMESTAMP)")
    assert st.fingerprint == _fingerprint(b)


# -- scopes provisioned before the type vocabulary ----------------------------------------------------------
LEGACY_SCHEMA = (
    "CREATE TABLE t (id INTEGER PRIMARY KEY, u, n NUMERIC, d DATE, ok BOOLEAN, b BLOB, s VARCHAR(9), r REAL);"
)
# What peersync stored for LEGACY_SCHEMA before: a hash over SQLite affinities.
LEGACY_SHAPE = [
    [
        "t",
        [
            ["id", "integer"], ["u", "blob"], ["n", "numeric"], ["d", "numeric"], ["ok", "numeric"], ["b", "blob"],
            ["s", "text"], ["r", "real"],
        ],
        ["id"],
    ]
]  # fmt: skip
LEGACY_FP = hashlib.sha256(json.dumps(LEGACY_SHAPE, separators=(",", ":")).encode()).hexdigest()[:16]


def _stored(path: Path) -> str:
    conn = sqlite3.connect(path)
    (fp,) = conn.execute("SELECT fingerprint FROM _peersync_scopes WHERE name = 's'").fetchone()
    conn.close()
    return str(fp)


def _as_provisioned_before(path: Path) -> None:
    """Store the affinity fingerprint, as the previous version of peersync did."""
    write(path, ("UPDATE _peersync_scopes SET fingerprint = ? WHERE name = 's'", (LEGACY_FP,)))


@pytest.fixture
def legacy(make_db: MakeDb) -> tuple[Path, Path]:
    """A: provisioned by the previous version; B: provisioned now."""
    a, b = peers(make_db, LEGACY_SCHEMA, ["t"], "ab")
    assert _stored(a) != LEGACY_FP  # the new rule differs for these columns
    _as_provisioned_before(a)
    return a, b


def test_a_scope_stored_under_the_affinity_fingerprint_syncs_both_ways(legacy: tuple[Path, Path]) -> None:
    a, b = legacy
    write(a, "INSERT INTO t VALUES (1, X'00', 1.25, '2024-02-29', 1, X'FF', 'a', 0.5)")
    write(b, "INSERT INTO t VALUES (2, 'any', 3, '2024-03-01', 0, NULL, 'b', NULL)")
    r = sync(a, b)
    assert (r.sent_a_to_b, r.sent_b_to_a, r.errors) == (1, 1, 0)
    assert rows(a, "t") == rows(b, "t") and len(rows(a, "t")) == 2
    assert _fingerprint(a) == _fingerprint(b)  # A reports the current rule's fingerprint
    assert _stored(a) == LEGACY_FP  # and reading it wrote nothing


def test_provisioning_again_over_the_affinity_fingerprint_is_a_no_op(legacy: tuple[Path, Path]) -> None:
    a, _ = legacy
    with peersync.connect(a) as db:
        assert db.provision("s", ["t"]) is False
    assert _stored(a) == LEGACY_FP


def test_repair_stores_the_current_fingerprint_without_calling_it_a_migration(legacy: tuple[Path, Path]) -> None:
    a, b = legacy
    with peersync.connect(a) as db:
        report = db.repair("s")
    assert not report.migrated and report.retracked == ()
    assert _stored(a) == _stored(b) != LEGACY_FP


def test_the_affinity_fingerprint_still_catches_a_changed_table(legacy: tuple[Path, Path]) -> None:
    a, b = legacy
    write(a, "ALTER TABLE t ADD COLUMN extra TEXT")
    with pytest.raises(peersync.SchemaMismatch, match="--migrate"):
        sync(a, b)
