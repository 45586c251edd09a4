"""The ``peersync`` command's contract: subcommands, ``--json`` outputs, and
every error as one ``peersync: error:`` line on stderr, exit code 2, no
traceback, nothing changed."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import peersync
from peersync._cli.main import cli, main

from ..conftest import ITEMS_SCHEMA
from ..helpers import rows, write

MakeDb = Callable[..., Path]
SYNC_KEYS = {"sent_a_to_b", "sent_b_to_a", "applied", "skipped_known", "conflicts", "batches", "bytes", "seconds"}


# -- running the command ---------------------------------------------------------------------------
@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


def invoke(*args: object) -> Run:
    """In process, through click's runner (stdout and stderr kept apart)."""
    res: Result = CliRunner().invoke(cli, [str(a) for a in args], env={"COLUMNS": "250"})
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise AssertionError(f"peersync {args} raised {res.exception!r}") from res.exception
    return Run(res.exit_code, res.stdout, res.stderr)


def run_main(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: object) -> Run:
    """In process, through the real entry point ``main`` (which turns click's
    usage errors into one line with a hint to the command's help)."""
    monkeypatch.setattr(sys, "argv", ["peersync", *(str(a) for a in args)])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return Run(code, out, err)


def command() -> list[str]:
    exe = shutil.which("peersync")
    return [exe] if exe else [sys.executable, "-m", "peersync"]


def run(*args: object, timeout: float = 60) -> Run:
    """A real subprocess: what a user's shell sees."""
    p = subprocess.run(
        [*command(), *(str(a) for a in args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )
    return Run(p.returncode, p.stdout, p.stderr)


def ok(r: Run) -> Run:
    assert r.code == 0, r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    return r


def assert_error(r: Run, match: str | None = None) -> str:
    assert "Traceback" not in r.stdout + r.stderr
    assert r.code == 2, (r.code, r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("peersync: error: "), lines[0]
    if match is not None:
        assert re.search(match, lines[0], re.IGNORECASE), lines[0]
    return lines[0]


def snapshot(*paths: Path) -> dict[Path, bytes | None]:
    return {p: p.read_bytes() if p.exists() else None for p in paths}


def sync_json(*args: object) -> dict[str, object]:
    r = ok(invoke("sync", *args, "--json"))
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1, r.stdout
    data = json.loads(lines[0])
    assert isinstance(data, dict)
    assert set(data) >= SYNC_KEYS
    return data


def peersync_objects(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    out = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE name LIKE '\\_peersync\\_%' ESCAPE '\\'")]
    conn.close()
    return out


@pytest.fixture
def pair(make_db: MakeDb) -> tuple[Path, Path]:
    a, b = make_db("a"), make_db("b")
    for p in (a, b):
        ok(invoke("init", p, "--scope", "s", "--table", "item", "--table", "tag"))
    return a, b


def five_items(path: Path) -> None:
    write(path, *(f"INSERT INTO item VALUES ({i}, 'item {i}', {i}, {i}.5)" for i in range(1, 6)))


# -- happy paths -----------------------------------------------------------------------------------
def test_init_is_idempotent_and_reports(make_db: MakeDb) -> None:
    a = make_db("a")
    write(a, "INSERT INTO item VALUES (1, 'x', 1, 1.0), (2, 'y', 2, 2.0)")
    r = ok(invoke("init", a, "--scope", "s", "--table", "item", "--table", "tag"))
    assert "provisioned" in r.stdout and "2 rows tracked" in r.stdout
    before = snapshot(a)
    r = ok(invoke("init", f"sqlite:///{a}", "-s", "s", "-t", "tag", "-t", "item"))
    assert "already provisioned" in r.stdout
    assert snapshot(a) == before


def test_sync_json_counts_a_known_scenario(pair: tuple[Path, Path]) -> None:
    a, b = pair
    five_items(a)
    d = sync_json(a, b, "--scope", "s")
    assert (d["sent_a_to_b"], d["sent_b_to_a"], d["applied"], d["skipped_known"], d["conflicts"]) == (5, 0, 5, 0, 0)
    assert isinstance(d["batches"], int) and d["batches"] >= 1
    assert isinstance(d["bytes"], int) and d["bytes"] > 0
    assert isinstance(d["seconds"], float) and d["seconds"] >= 0
    assert d.get("errors", 0) == 0
    assert rows(a, "item") == rows(b, "item")

    # Nothing new: nothing sent.
    d = sync_json(a, b, "--scope", "s")
    assert (d["sent_a_to_b"], d["sent_b_to_a"], d["applied"], d["conflicts"]) == (0, 0, 0, 0)

    # Edits on both sides, counted per direction.
    write(a, "UPDATE item SET qty = 100 WHERE id = 1")
    write(b, "UPDATE item SET qty = 200 WHERE id = 2", "DELETE FROM item WHERE id = 3")
    d = sync_json(f"sqlite:///{a}", b, "--scope", "s")
    assert (d["sent_a_to_b"], d["sent_b_to_a"], d["applied"], d["conflicts"]) == (1, 2, 3, 0)
    assert rows(a, "item") == rows(b, "item")
    assert [r[0] for r in rows(a, "item")] == [1, 2, 4, 5]


def test_sync_json_batches_follow_batch_size(pair: tuple[Path, Path]) -> None:
    a, b = pair
    five_items(a)
    d = sync_json(a, b, "--scope", "s", "--direction", "push", "--batch-size", "2")
    assert (d["sent_a_to_b"], d["sent_b_to_a"], d["applied"], d["batches"]) == (5, 0, 5, 3)


def test_sync_prints_a_table_without_json(pair: tuple[Path, Path]) -> None:
    a, b = pair
    five_items(a)
    r = ok(invoke("sync", a, b, "--scope", "s"))
    assert "sent" in r.stdout and "5" in r.stdout
    assert r.stderr == ""


def test_push_moves_a_to_b_and_pull_b_to_a(pair: tuple[Path, Path]) -> None:
    a, b = pair
    write(a, "INSERT INTO item VALUES (1, 'from a', 1, 1.0)")
    write(b, "INSERT INTO item VALUES (2, 'from b', 2, 2.0)", "INSERT INTO tag VALUES (2, 'b')")
    d = sync_json(a, b, "--scope", "s", "--direction", "push")
    assert (d["sent_a_to_b"], d["sent_b_to_a"], d["applied"]) == (1, 0, 1)
    assert [r[0] for r in rows(b, "item")] == [1, 2]
    assert [r[0] for r in rows(a, "item")] == [1]
    d = sync_json(a, b, "--scope", "s", "-d", "push")
    assert (d["sent_a_to_b"], d["sent_b_to_a"]) == (0, 0)

    d = sync_json(a, b, "--scope", "s", "--direction", "pull")
    assert (d["sent_a_to_b"], d["sent_b_to_a"], d["applied"]) == (0, 2, 2)
    assert rows(a, "item") == rows(b, "item") and rows(a, "tag") == rows(b, "tag") == [(2, "b")]
    d = sync_json(a, b, "--scope", "s", "--direction", "both")
    assert (d["sent_a_to_b"], d["sent_b_to_a"]) == (0, 0)


def test_status_json_fields(pair: tuple[Path, Path]) -> None:
    a, b = pair
    five_items(a)
    write(a, "DELETE FROM item WHERE id = 5")
    st = json.loads(ok(invoke("status", a, "--scope", "s", "--json")).stdout)
    assert st["scope"] == "s"
    assert re.fullmatch(r"[0-9a-f]{32}", st["replica_id"])
    assert st["tick"] >= 6
    assert (st["tracked_rows"], st["tombstones"], st["conflicts"]) == (5, 1, 0)
    assert sorted(st["tables"]) == ["item", "tag"]
    assert "knowledge" in st and isinstance(st["fingerprint"], str)
    b_st = json.loads(ok(invoke("status", b, "--scope", "s", "--json")).stdout)
    assert b_st["replica_id"] != st["replica_id"] and b_st["fingerprint"] == st["fingerprint"]

    everything = json.loads(ok(invoke("status", a, "--json")).stdout)
    assert isinstance(everything, list) and [s["scope"] for s in everything] == ["s"]
    assert everything[0]["replica_id"] == st["replica_id"]

    text = ok(invoke("status", a)).stdout
    assert st["replica_id"] in text and "tombstones" in text


def test_conflicts_json(pair: tuple[Path, Path]) -> None:
    a, b = pair
    five_items(a)
    sync_json(a, b, "--scope", "s")
    write(a, "UPDATE item SET name = 'edited at a' WHERE id = 1")
    write(b, "UPDATE item SET name = 'edited at b' WHERE id = 1")
    d = sync_json(a, b, "--scope", "s")
    assert d["conflicts"] == 1
    assert rows(a, "item") == rows(b, "item")

    logged = {}
    for p in (a, b):
        cs = json.loads(ok(invoke("conflicts", p, "--json")).stdout)
        assert isinstance(cs, list)
        logged[p] = cs
        assert json.loads(ok(invoke("conflicts", p, "--scope", "s", "--json")).stdout) == cs
    assert len(logged[a]) + len(logged[b]) == 1
    (c,) = logged[a] + logged[b]
    assert (c["scope"], c["table"], c["key"], c["type"], c["policy"]) == (
        "s",
        "item",
        [1],
        "update/update",
        "last-writer-wins",
    )
    assert c["outcome"] in ("source", "destination")
    assert {c["local_row"]["name"], c["remote_row"]["name"]} == {"edited at a", "edited at b"}
    winner = c["remote_row"] if c["outcome"] == "source" else c["local_row"]
    assert rows(a, "item")[0][1] == winner["name"]

    st = json.loads(ok(invoke("status", b, "--scope", "s", "--json")).stdout)
    assert st["conflicts"] == len(logged[b])
    text = ok(invoke("conflicts", b if logged[b] else a)).stdout
    assert "update/update" in text
    assert "none" in ok(invoke("conflicts", a if logged[b] else b)).stdout


def test_deprovision_and_reidentify(pair: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = pair
    five_items(a)
    sync_json(a, b, "--scope", "s")
    copy = tmp_path / "copy.db"
    shutil.copyfile(a, copy)
    assert_error(invoke("sync", a, copy, "--scope", "s"), "same replica")
    ok(invoke("reidentify", copy, "--scope", "s"))
    d = sync_json(a, copy, "--scope", "s")
    assert (d["sent_a_to_b"], d["sent_b_to_a"], d["conflicts"]) == (0, 0, 0)

    data = rows(a, "item")
    r = ok(invoke("deprovision", a, "--scope", "s"))
    assert "deprovisioned" in r.stdout
    assert peersync_objects(a) == []
    assert rows(a, "item") == data
    assert "no scopes" in ok(invoke("status", a)).stdout
    assert json.loads(ok(invoke("status", a, "--json")).stdout) == []
    assert json.loads(ok(invoke("conflicts", a, "--json")).stdout) == []


def test_demo_runs() -> None:
    r = ok(run("demo", timeout=120))
    assert "identical" in r.stdout
    assert r.stderr == ""


# -- errors ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ErrorCase:
    id: str
    setup: Callable[[Path], tuple[list[object], list[Path]]]  # folder -> (arguments, files to watch)
    match: str | None = None


def _db(
    folder: Path,
    name: str,
    schema: str | None = None,
    scope_tables: tuple[str, ...] | None = ("item", "tag"),
    scope: str = "s",
) -> Path:
    path = folder / f"{name}.db"
    conn = sqlite3.connect(path)
    conn.executescript(schema or ITEMS_SCHEMA)
    conn.close()
    write(path, f"INSERT INTO item (id, name, qty, price) VALUES (1, '{name}', 1, 1.0)")
    if scope_tables:
        with peersync.connect(path) as d:
            d.provision(scope, list(scope_tables))
    return path


def _junk(folder: Path) -> Path:
    p = folder / "junk.db"
    p.write_bytes(os.urandom(8192))
    return p


def _missing(folder: Path) -> Path:
    return folder / "missing.db"


def _case_missing_init(f: Path) -> tuple[list[object], list[Path]]:
    return ["init", _missing(f), "-s", "s", "-t", "item"], [_missing(f)]


def _case_missing_sync(f: Path) -> tuple[list[object], list[Path]]:
    a = _db(f, "a")
    return ["sync", a, _missing(f), "-s", "s"], [a, _missing(f)]


def _case_missing_sync_a(f: Path) -> tuple[list[object], list[Path]]:
    b = _db(f, "b")
    return ["sync", _missing(f), b, "-s", "s"], [b, _missing(f)]


def _case_missing_status(f: Path) -> tuple[list[object], list[Path]]:
    return ["status", _missing(f)], [_missing(f)]


def _case_missing_url(f: Path) -> tuple[list[object], list[Path]]:
    return ["conflicts", f"sqlite:///{_missing(f)}"], [_missing(f)]


def _case_missing_table(f: Path) -> tuple[list[object], list[Path]]:
    a = _db(f, "a", scope_tables=None)
    return ["init", a, "-s", "s", "-t", "item", "-t", "nope"], [a]


def _case_no_primary_key(f: Path) -> tuple[list[object], list[Path]]:
    a = _db(f, "a", ITEMS_SCHEMA + "CREATE TABLE log (at INTEGER, msg TEXT);", scope_tables=None)
    return ["init", a, "-s", "s", "-t", "item", "-t", "log"], [a]


def _case_view(f: Path) -> tuple[list[object], list[Path]]:
    a = _db(f, "a", ITEMS_SCHEMA + "CREATE VIEW names AS SELECT id, name FROM item;", scope_tables=None)
    return ["init", a, "-s", "s", "-t", "names"], [a]


def _case_redefine_scope(f: Path) -> tuple[list[object], list[Path]]:
    a = _db(f, "a", scope_tables=("item",))
    return ["init", a, "-s", "s", "-t", "item", "-t", "tag"], [a]


def _unknown_scope(cmd: str) -> Callable[[Path], tuple[list[object], list[Path]]]:
    def setup(f: Path) -> tuple[list[object], list[Path]]:
        a, b = _db(f, "a"), _db(f, "b")
        args: list[object] = [cmd, a, b] if cmd == "sync" else [cmd, a]
        return [*args, "--scope", "nope"], [a, b]

    return setup


def _case_unknown_scope_unprovisioned(f: Path) -> tuple[list[object], list[Path]]:
    a, b = _db(f, "a", scope_tables=None), _db(f, "b")
    return ["sync", b, a, "-s", "s"], [a, b]


def _case_tables_differ(f: Path) -> tuple[list[object], list[Path]]:
    a, b = _db(f, "a", scope_tables=("item",)), _db(f, "b")
    return ["sync", a, b, "-s", "s"], [a, b]


def _case_columns_differ(f: Path) -> tuple[list[object], list[Path]]:
    a = _db(f, "a")
    b = _db(
        f,
        "b",
        "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, price REAL, extra TEXT);"
        "CREATE TABLE tag (item_id INTEGER, label TEXT, PRIMARY KEY (item_id, label));",
    )
    return ["sync", a, b, "-s", "s", "--direction", "push"], [a, b]


def _case_schema_changed(f: Path) -> tuple[list[object], list[Path]]:
    a, b = _db(f, "a"), _db(f, "b")
    write(a, "ALTER TABLE item ADD COLUMN extra TEXT")
    return ["sync", a, b, "-s", "s"], [a, b]


def _case_same_replica(f: Path) -> tuple[list[object], list[Path]]:
    a = _db(f, "a")
    c = f / "copy.db"
    shutil.copyfile(a, c)
    return ["sync", a, c, "-s", "s"], [a, c]


def _junk_case(cmd: str, position: int = 0) -> Callable[[Path], tuple[list[object], list[Path]]]:
    def setup(f: Path) -> tuple[list[object], list[Path]]:
        j = _junk(f)
        if cmd == "sync":
            other = _db(f, "a")
            pair = [j, other] if position == 0 else [other, j]
            return ["sync", *pair, "-s", "s"], [j, other]
        if cmd == "init":
            return ["init", j, "-s", "s", "-t", "item"], [j]
        return [cmd, j, "-s", "s"], [j]

    return setup


def _bad_url(cmd: str, url: str) -> Callable[[Path], tuple[list[object], list[Path]]]:
    def setup(f: Path) -> tuple[list[object], list[Path]]:
        a = _db(f, "a")
        if cmd == "sync":
            return ["sync", a, url, "-s", "s"], [a]
        if cmd == "init":
            return ["init", url, "-s", "s", "-t", "item"], [a]
        return [cmd, url], [a]

    return setup


ERROR_CASES = [
    ErrorCase("missing-file-init", _case_missing_init, "missing.db"),
    ErrorCase("missing-file-sync-b", _case_missing_sync, "missing.db"),
    ErrorCase("missing-file-sync-a", _case_missing_sync_a, "missing.db"),
    ErrorCase("missing-file-status", _case_missing_status, "missing.db"),
    ErrorCase("missing-file-url", _case_missing_url, "missing.db"),
    ErrorCase("missing-table", _case_missing_table, "nope"),
    ErrorCase("no-primary-key", _case_no_primary_key, "primary key"),
    ErrorCase("view", _case_view, "view"),
    ErrorCase("redefine-scope", _case_redefine_scope, "'s'"),
    ErrorCase("unknown-scope-sync", _unknown_scope("sync"), "nope"),
    ErrorCase("unknown-scope-status", _unknown_scope("status"), "nope"),
    ErrorCase("unknown-scope-conflicts", _unknown_scope("conflicts"), "nope"),
    ErrorCase("unknown-scope-deprovision", _unknown_scope("deprovision"), "nope"),
    ErrorCase("unknown-scope-reidentify", _unknown_scope("reidentify"), "nope"),
    ErrorCase("unprovisioned-peer", _case_unknown_scope_unprovisioned, "init|scope"),
    ErrorCase("scope-tables-differ", _case_tables_differ, "'s'"),
    ErrorCase("scope-columns-differ", _case_columns_differ, "'s'"),
    ErrorCase("schema-changed", _case_schema_changed, "changed"),
    ErrorCase("same-replica", _case_same_replica, "reidentif"),
    ErrorCase("not-a-database-init", _junk_case("init"), "not a database"),
    ErrorCase("not-a-database-sync-a", _junk_case("sync", 0), "not a database"),
    ErrorCase("not-a-database-sync-b", _junk_case("sync", 1), "not a database"),
    ErrorCase("not-a-database-status", _junk_case("status"), "not a database"),
    ErrorCase("not-a-database-deprovision", _junk_case("deprovision"), "not a database"),
    ErrorCase("postgres-url-sync", _bad_url("sync", "postgres://user:pw@localhost/shop"), "postgres"),
    ErrorCase("postgres-url-init", _bad_url("init", "postgresql://localhost/shop"), "postgres"),
    ErrorCase("mysql-url-status", _bad_url("status", "mysql://root@localhost/shop"), "mysql"),
    ErrorCase("sqlite-url-with-host", _bad_url("status", "sqlite://somehost/shop.db"), "sqlite"),
]


@pytest.mark.parametrize("case", ERROR_CASES, ids=[c.id for c in ERROR_CASES])
def test_errors_are_one_line_exit_2_and_change_nothing(tmp_path: Path, case: ErrorCase) -> None:
    args, watched = case.setup(tmp_path)
    before = snapshot(*watched)
    listing = sorted(os.listdir(tmp_path))
    assert_error(invoke(*args), case.match)
    assert snapshot(*watched) == before
    assert sorted(os.listdir(tmp_path)) == listing  # no file created (journals included)


@pytest.mark.parametrize(
    "case",
    [
        c
        for c in ERROR_CASES
        if c.id
        in {
            "missing-file-sync-b",
            "no-primary-key",
            "scope-columns-differ",
            "not-a-database-sync-a",
            "postgres-url-sync",
            "unknown-scope-sync",
        }
    ],
    ids=lambda c: c.id,
)
def test_errors_in_a_real_subprocess(tmp_path: Path, case: ErrorCase) -> None:
    args, watched = case.setup(tmp_path)
    before = snapshot(*watched)
    assert_error(run(*args), case.match)
    assert snapshot(*watched) == before


# -- locks -----------------------------------------------------------------------------------------
@pytest.fixture
def exclusive_lock(make_db: MakeDb) -> Iterator[Callable[[Path], None]]:
    """``hold(path)``: another connection holds BEGIN EXCLUSIVE until the test ends."""
    held: list[sqlite3.Connection] = []

    def hold(path: Path) -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        held.append(conn)

    yield hold
    for conn in held:
        conn.execute("ROLLBACK")
        conn.close()


LOCKED_COMMANDS: list[tuple[str, Callable[[Path, Path], list[object]]]] = [
    ("sync-b-locked", lambda a, b: ["sync", a, b, "-s", "s"]),
    ("sync-a-locked", lambda a, b: ["sync", b, a, "-s", "s"]),
    ("init", lambda a, b: ["init", a, "-s", "other", "-t", "item"]),
    ("status", lambda a, b: ["status", a]),
    ("deprovision", lambda a, b: ["deprovision", a, "-s", "s"]),
]


@pytest.mark.parametrize(("name", "make_args"), LOCKED_COMMANDS, ids=[n for n, _ in LOCKED_COMMANDS])
def test_a_locked_database_times_out_with_one_line(
    pair: tuple[Path, Path],
    exclusive_lock: Callable[[Path], None],
    name: str,
    make_args: Callable[[Path, Path], list[object]],
) -> None:
    a, b = pair
    five_items(b)
    write(a, "INSERT INTO item VALUES (9, 'a', 9, 9.0)")
    locked = b if name == "sync-b-locked" else a
    before = snapshot(a, b)
    exclusive_lock(locked)
    start = time.monotonic()
    assert_error(invoke(*make_args(a, b), "--timeout", "0.2"), "locked")
    assert time.monotonic() - start < 4, "--timeout 0.2 was not honoured (the default is 5 s)"
    assert snapshot(a, b) == before


def test_a_locked_database_in_a_real_subprocess(
    pair: tuple[Path, Path], exclusive_lock: Callable[[Path], None]
) -> None:
    a, b = pair
    five_items(a)
    before = snapshot(a, b)
    exclusive_lock(b)
    assert_error(run("sync", a, b, "-s", "s", "--timeout", "0.2"), "locked")
    assert_error(run("init", b, "-s", "s2", "-t", "item", "--timeout", "0.2"), "locked")
    assert snapshot(a, b) == before


def test_a_write_locked_wal_database_times_out(pair: tuple[Path, Path]) -> None:
    """In WAL mode readers pass; the write waits for the lock, then gives up."""
    a, b = pair
    for p in (a, b):
        conn = sqlite3.connect(p)
        assert conn.execute("PRAGMA journal_mode = WAL").fetchone() == ("wal",)
        conn.close()
    five_items(a)

    def logical(p: Path) -> list[str]:
        conn = sqlite3.connect(p)
        out = list(conn.iterdump())
        conn.close()
        return out

    before = {p: logical(p) for p in (a, b)}
    holder = sqlite3.connect(b, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        assert_error(invoke("sync", a, b, "-s", "s", "--timeout", "0.2"), "locked")
        assert_error(invoke("init", b, "-s", "s2", "-t", "item", "--timeout", "0.2"), "locked")
        ok(invoke("status", b, "--timeout", "0.2"))  # reading is fine
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert {p: logical(p) for p in (a, b)} == before


def test_the_lock_error_is_database_locked(pair: tuple[Path, Path], exclusive_lock: Callable[[Path], None]) -> None:
    """The API behind the CLI: a lock held past the timeout is DatabaseLocked
    (retryable), not a generic 'not a usable database' StorageError."""
    a, _ = pair
    exclusive_lock(a)
    with pytest.raises(peersync.DatabaseLocked):
        peersync.connect(a, timeout=0.1)
