"""A large batch of never-seen rows is inserted with its table's insert trigger dropped
inside the apply's transaction and created again, from the text ``sqlite_master`` held,
before the commit (src/peersync/_adapters/sqlite/apply.py, ``untriggered``): the triggers
come back byte for byte, a failure or a crash mid-write leaves them as they were, and
where the database has side effects (a trigger of its own) the insert trigger stays. And the
end-of-session compaction skips its per-entry probe when every entry since its mark was written
for a row never seen before (src/peersync/_adapters/sqlite/core.py, ``_compact``), but not
when something else logged a change in between.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import peersync
from peersync._adapters.sqlite.apply import UNTRIGGERED_ROWS
from peersync._adapters.sqlite.apply_writes import WritePhase

from ..helpers import peers, push, rows, sync, write

ITEM = "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT);"
N = UNTRIGGERED_ROWS + 200


def _schema(path: Path) -> tuple[int, list[tuple[str, str]]]:
    """(``PRAGMA schema_version``, every trigger's name and text)."""
    conn = sqlite3.connect(path)
    try:
        (version,) = conn.execute("PRAGMA schema_version").fetchone()
        triggers = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name").fetchall()
        return version, triggers
    finally:
        conn.close()


def _fill(path: Path, n: int) -> None:
    write(path, *((f"INSERT INTO item VALUES ({i}, 'r{i}')") for i in range(1, n + 1)))


def _tracked(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute('SELECT count(*) FROM "_peersync_t_item" WHERE del = 0').fetchone()[0])
    finally:
        conn.close()


def test_a_bulk_of_new_rows_leaves_the_triggers_byte_identical(make_db: Callable[..., Path]) -> None:
    a, b, c = peers(make_db, ITEM, ["item"])
    _fill(a, N)
    version, triggers = _schema(b)
    push(a, b)
    after, again = _schema(b)
    assert after > version  # the insert trigger was dropped and created again
    assert again == triggers
    assert _tracked(b) == N
    # The trigger is live again: a local insert is a change that reaches the others.
    write(b, f"INSERT INTO item VALUES ({N + 1}, 'local')")
    assert _tracked(b) == N + 1
    sync(b, c)
    sync(c, a)
    assert rows(a, "item") == rows(b, "item") == rows(c, "item")
    assert (r := sync(a, b)).sent_a_to_b == r.sent_b_to_a == 0


def test_a_small_batch_keeps_the_insert_trigger(make_db: Callable[..., Path]) -> None:
    a, b = peers(make_db, ITEM, ["item"], names="ab")
    _fill(a, UNTRIGGERED_ROWS - 1)
    before = _schema(b)
    push(a, b)
    assert _schema(b) == before
    assert _tracked(b) == UNTRIGGERED_ROWS - 1


def test_a_database_with_its_own_trigger_keeps_the_insert_trigger(make_db: Callable[..., Path]) -> None:
    schema = ITEM + "CREATE TABLE seen (id INTEGER PRIMARY KEY, n INTEGER);"
    a, b, c = peers(make_db, schema, ["item", "seen"])
    write(b, "CREATE TRIGGER saw AFTER INSERT ON item BEGIN INSERT INTO seen VALUES (NEW.id, 1); END")
    _fill(a, N)
    before = _schema(b)
    push(a, b)
    assert _schema(b) == before
    assert len(rows(b, "seen")) == N
    sync(b, c)  # what the user's trigger wrote is a local change of b
    assert len(rows(c, "seen")) == N


def test_a_failed_write_leaves_the_triggers_as_they_were(
    make_db: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = peers(make_db, ITEM, ["item"], names="ab")
    _fill(a, N)
    before = _schema(b)

    def broken(self: WritePhase, ins: object) -> object:
        raise sqlite3.OperationalError("disk I/O error (injected)")

    monkeypatch.setattr(WritePhase, "_write", broken)
    with pytest.raises(peersync.StorageError, match="injected"):
        push(a, b)
    monkeypatch.undo()
    assert _schema(b) == before
    assert rows(b, "item") == []
    push(a, b)
    assert len(rows(b, "item")) == N


_CRASH = """
import os, sys
import peersync
from peersync._adapters.sqlite.apply_writes import WritePhase
def crash(self, ins):
    os._exit(9)  # killed inside the apply's transaction, the insert trigger dropped
WritePhase._write = crash
with peersync.connect(sys.argv[1]) as a, peersync.connect(sys.argv[2]) as b:
    peersync.sync(a, b, "s", direction="push")
"""


def test_a_crash_mid_write_leaves_the_triggers_as_they_were(make_db: Callable[..., Path]) -> None:
    a, b = peers(make_db, ITEM, ["item"], names="ab")
    _fill(a, N)
    before = _schema(b)
    src = str(Path(peersync.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", _CRASH, str(a), str(b)], env=env, capture_output=True, check=False)
    assert proc.returncode == 9, proc.stderr
    assert _schema(b) == before  # the hot journal rolls the DROP back
    write(b, "INSERT INTO item VALUES (1, 'local')")
    assert _tracked(b) == 1
    push(a, b)
    assert len(rows(b, "item")) == N


# -- the session's end compaction after batches of never-seen rows ----------------------------


def _log_entries(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT count(*) FROM _peersync_log WHERE tbl != 0").fetchone()[0])
    finally:
        conn.close()


def test_the_end_of_a_session_of_new_rows_skips_the_compaction_probe(make_db: Callable[..., Path]) -> None:
    """Every log entry since the mark was written for a row never seen before and is its
    row's current one: nothing to drop, so the per-entry probe is not run."""
    a, b = peers(make_db, ITEM, ["item"], names="ab")
    _fill(a, 300)
    statements: list[str] = []
    with peersync.connect(a) as x, peersync.connect(b) as y:
        y.conn.set_trace_callback(statements.append)  # type: ignore[attr-defined]
        peersync.sync(x, y, "s", direction="push", batch_size=50)
    assert not [st for st in statements if st.startswith("DELETE FROM _peersync_log") and "NOT EXISTS" in st]
    assert _log_entries(b) == _tracked(b) == 300
    write(b, "UPDATE item SET name = 'changed' WHERE id = 7")
    push(b, a)
    assert rows(a, "item") == rows(b, "item")


class _WriterBetweenBatches:
    """The destination peer, with another program changing a row that the first batch
    brought, before the second batch comes."""

    def __init__(self, peer: peersync.Database, path: Path) -> None:
        self.peer, self.path, self.batches = peer, path, 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.peer, name)

    def apply(self, scope: str, data: bytes, handler: object) -> object:
        self.batches += 1
        if self.batches == 2:
            write(self.path, "UPDATE item SET name = 'local' WHERE id = 1")
        return self.peer.apply(scope, data, handler)  # type: ignore[arg-type]


def test_a_local_change_between_batches_of_new_rows_is_still_compacted(make_db: Callable[..., Path]) -> None:
    """The row's first entry, written by the apply, is superseded by the local change: the
    end of the session drops it, so the log holds one entry per row."""
    a, b = peers(make_db, ITEM, ["item"], names="ab")
    _fill(a, 300)
    with peersync.connect(a) as x, peersync.connect(b) as y:
        hooked = _WriterBetweenBatches(y, b)
        peersync.sync(x, hooked, "s", direction="push", batch_size=50)  # type: ignore[arg-type]
    assert hooked.batches >= 2
    assert _log_entries(b) == _tracked(b) == 300
    sync(a, b)
    assert rows(a, "item") == rows(b, "item")
    assert rows(a, "item")[0] == (1, "local")
