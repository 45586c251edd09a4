"""kill -9 of a ``peersync`` subprocess at random points (docs/design.md, "Promises": atomic, resumable sessions).

Each run copies three prepared peers (A, B, C with diverged histories: inserts,
updates, deletes, cascades, conflicts, a partial session from C), starts
``peersync sync X Y --scope s --batch-size N`` and SIGKILLs it after a random
delay spread over the whole session (calibrated on an uninterrupted run). Some
runs also kill a foreign writer inside a transaction, before or during the sync.
Afterwards every database must pass ``PRAGMA integrity_check`` and
``foreign_key_check``, tracking must match data, knowledge must never claim what
data lacks, the resumed session must send nothing the destination knows, and a
full round must converge to what an uninterrupted session produces.

The seed is printed on failure; ``PEERSYNC_KILL_SEED`` / ``PEERSYNC_KILL_RUNS``
reproduce or extend a run.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import peersync
from peersync import Knowledge, Version
from peersync.testing import FaultyPeer, RecordingPeer

SCOPE = "s"
TABLES = ["parent", "child", "doc"]
SCHEMA = """
CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT NOT NULL, qty INTEGER NOT NULL, price REAL, data BLOB);
CREATE TABLE child (parent_id INTEGER NOT NULL REFERENCES parent(id) ON DELETE CASCADE, label TEXT NOT NULL,
                    note TEXT, PRIMARY KEY (parent_id, label));
CREATE TABLE doc (slug TEXT PRIMARY KEY, body TEXT, rev INTEGER NOT NULL);
"""
WORKER = Path(__file__).with_name("_worker.py")
RUNS = int(os.environ.get("PEERSYNC_KILL_RUNS", "24"))
SEED = int(os.environ.get("PEERSYNC_KILL_SEED", str(random.SystemRandom().randrange(2**32))))

Key = tuple[Any, ...]
Row = tuple[Any, ...]


# -- the check at the heart of the test ------------------------------------------------------------------------------
@dataclass
class Snapshot:
    """One replica as plain data, read straight from its tables."""

    name: str
    rid: bytes
    knowledge: Knowledge  # as the replica reports it (own ticks included)
    rows: dict[str, dict[Key, tuple[Version, Row | None]]]  # table -> key -> (reported version, values or None)
    data: dict[str, list[Row]]  # table -> live rows in key order
    problems: list[str]  # tracking that disagrees with data


def snapshot(path: Path, scope: str = SCOPE) -> Snapshot:
    """Read a replica: knowledge through the API, versions and rows with plain SQL.

    The reported version of a row is the one a session would send: its origin
    version when its last change arrived through this scope, otherwise
    ``(this replica, local tick)``.
    """
    with peersync.connect(path) as db:
        info = db.describe(scope)
        schemas = db.schemas(scope)
    conn = sqlite3.connect(path)
    try:
        idx, rid = conn.execute("SELECT idx, replica_id FROM _peersync_scopes WHERE name = ?", (scope,)).fetchone()
        assert rid == info.replica_id
        reps = dict(conn.execute("SELECT idx, replica_id FROM _peersync_replicas").fetchall())
        has_log = conn.execute("SELECT 1 FROM sqlite_master WHERE name = '_peersync_log'").fetchone() is not None
        tids = dict(conn.execute("SELECT tbl, id FROM _peersync_tracked").fetchall()) if has_log else {}
        rows: dict[str, dict[Key, tuple[Version, Row | None]]] = {}
        data: dict[str, list[Row]] = {}
        problems: list[str] = []
        for name, schema in schemas.items():
            cols = ", ".join(f'"{c}"' for c in schema.columns)
            keys = ", ".join(f'"{k}"' for k in schema.key)
            live = conn.execute(f'SELECT {cols} FROM "{name}" ORDER BY {keys}').fetchall()
            data[name] = live
            kpos = schema.key_positions
            by_key = {tuple(r[i] for i in kpos): r for r in live}
            nk = len(schema.key)
            kc = ", ".join(f"k{i}" for i in range(nk))
            table: dict[Key, tuple[Version, Row | None]] = {}
            if has_log:  # sessions enumerate the change log: each row's last change must be in it
                unlogged = conn.execute(
                    f'SELECT {kc}, lt FROM "_peersync_t_{name}" AS t WHERE NOT EXISTS (SELECT 1 FROM _peersync_log'
                    f" AS l WHERE l.lt = t.lt AND l.tbl = ? AND "
                    + " AND ".join(f"l.k{i} = t.k{i}" for i in range(nk))
                    + ")",
                    (tids[name],),
                ).fetchall()
                problems += [f"{name} {tuple(r[:nk])}: its change at tick {r[nk]} is not in the log" for r in unlogged]
            for r in conn.execute(f'SELECT {kc}, lt, urep, utick, del, scope FROM "_peersync_t_{name}"'):
                key, (lt, urep, utick, deleted, sc) = tuple(r[:nk]), r[nk:]
                version = (reps[urep], utick) if sc == idx else (rid, lt)
                row = by_key.get(key)
                if deleted and row is not None:
                    problems.append(f"{name} {key}: tombstone but the row exists")
                if not deleted and row is None:
                    problems.append(f"{name} {key}: tracked as live but the row is gone")
                table[key] = (version, None if deleted else row)
            problems += [f"{name} {k}: row without tracking" for k in by_key.keys() - table.keys()]
            rows[name] = table
        (floor,) = conn.execute("SELECT floor FROM _peersync_clock").fetchone()
        if floor is not None:
            problems.append(f"apply floor left set ({floor}): triggers would skip local changes")
    finally:
        conn.close()
    return Snapshot(path.stem, rid, info.knowledge, rows, data, problems)


def overclaims(src: Snapshot, dst: Snapshot) -> list[str]:
    """Versions ``dst``'s knowledge contains that its data does not back up.

    For every row at ``src`` whose reported version ``dst`` claims to know,
    ``dst`` must hold the same row (same values, or both deleted / absent),
    unless ``dst`` holds a version ``src`` does not know: a newer concurrent
    change (or the winner of a conflict) that ``src`` has yet to receive.
    Otherwise neither side would ever send the other its row again.
    """
    out = []
    for table, rows in src.rows.items():
        other = dst.rows[table]
        for key, (version, values) in rows.items():
            if version not in dst.knowledge:
                continue
            mine = other.get(key)
            if (mine[1] if mine else None) == values:
                continue
            if mine is not None and mine[0] not in src.knowledge:
                continue
            out.append(
                f"{dst.name} knows {src.name}'s {table}{key} at {version[0].hex()[:8]}@{version[1]} = {values}"
                f" but holds {mine[1] if mine else 'nothing'}"
                + (f" at {mine[0][0].hex()[:8]}@{mine[0][1]}, which {src.name} knows" if mine else "")
            )
    return out


def check_consistent(paths: list[Path]) -> list[Snapshot]:
    """Every database sound, tracking matching data, no knowledge overclaimed."""
    for p in paths:
        conn = sqlite3.connect(p)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)], p.name
            assert conn.execute("PRAGMA foreign_key_check").fetchall() == [], p.name
        finally:
            conn.close()
    snaps = [snapshot(p) for p in paths]
    for s in snaps:
        assert s.problems == [], f"{s.name}: {s.problems[:5]}"
    for s in snaps:
        for d in snaps:
            if s is not d:
                bad = overclaims(s, d)
                assert bad == [], f"{len(bad)} overclaimed versions, e.g. {bad[:3]}"
    return snaps


# -- the prepared peers ----------------------------------------------------------------------------------------------
def _exec(path: Path, sql: str, params: list[tuple[Any, ...]] | tuple[Any, ...] = ()) -> None:
    """A foreign writer: plain sqlite3, foreign keys on, one transaction."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA foreign_keys = ON")
    with conn:
        if isinstance(params, list):
            conn.executemany(sql, params)
        else:
            conn.execute(sql, params)
    conn.close()


def _build(folder: Path) -> dict[str, Path]:
    """A, B and C with a shared base and diverged histories (a few thousand changes each)."""
    rng = random.Random(1234)
    paths = {n: folder / f"{n}.db" for n in "ABC"}
    for p in paths.values():
        conn = sqlite3.connect(p)
        conn.executescript(SCHEMA)
        conn.close()
    a, b, c = paths["A"], paths["B"], paths["C"]
    # Rows that exist before provisioning: 600 parents, 1200 children, 200 docs on A.
    _exec(
        a,
        "INSERT INTO parent VALUES (?, ?, ?, ?, ?)",
        [(i, f"p{i}", i, i / 7, rng.randbytes(8)) for i in range(1, 601)],
    )
    _exec(a, "INSERT INTO child VALUES (?, ?, ?)", [(i, lab, f"n{i}") for i in range(1, 601) for lab in ("x", "y")])
    _exec(a, "INSERT INTO doc VALUES (?, ?, ?)", [(f"d{i:04}", f"body {i} é", 0) for i in range(200)])
    dbs = {n: peersync.connect(p) for n, p in paths.items()}
    for db in dbs.values():
        db.provision(SCOPE, TABLES)
    peersync.sync(dbs["A"], dbs["B"], SCOPE, batch_size=1000)
    peersync.sync(dbs["A"], dbs["C"], SCOPE, batch_size=1000)
    # C edits first; A gets all of it, B only the first batch (a session cut short).
    _exec(c, "UPDATE parent SET name = name || '-c' WHERE id BETWEEN 100 AND 199")
    _exec(c, "INSERT INTO doc VALUES (?, ?, ?)", [(f"c{i:04}", f"from C {i}", 1) for i in range(150)])
    _exec(c, "DELETE FROM doc WHERE slug BETWEEN 'd0150' AND 'd0159'")
    peersync.sync(dbs["C"], dbs["A"], SCOPE, direction="push", batch_size=1000)
    run_partial = FaultyPeer(dbs["B"], interrupt_after=1)
    with pytest.raises(peersync.TransportError):
        peersync.sync(dbs["C"], run_partial, SCOPE, direction="push", batch_size=60)
    # A: inserts with children, updates, deletes (cascading), docs, some insert/insert keys with B.
    _exec(
        a,
        "INSERT INTO parent VALUES (?, ?, ?, ?, ?)",
        [(i, f"a{i}", i, None, rng.randbytes(16)) for i in range(10001, 11201)],
    )
    _exec(a, "INSERT INTO child VALUES (?, ?, ?)", [(i, lab, "a") for i in range(10001, 11201) for lab in ("x", "y")])
    _exec(a, "UPDATE parent SET qty = qty + 1000, price = 1.5 WHERE id BETWEEN 1 AND 300")
    _exec(a, "DELETE FROM parent WHERE id BETWEEN 501 AND 560")
    _exec(a, "UPDATE child SET note = 'a-note' WHERE parent_id BETWEEN 301 AND 400")
    _exec(a, "INSERT INTO doc VALUES (?, ?, ?)", [(f"a{i:04}", f"from A {i}", 2) for i in range(300)])
    _exec(a, "INSERT INTO doc VALUES (?, ?, ?)", [(f"dup{i:03}", f"A's {i}", 3) for i in range(40)])
    _exec(a, "UPDATE doc SET body = 'A edit', rev = rev + 1 WHERE slug BETWEEN 'd0000' AND 'd0099'")
    # B: the same kinds, overlapping A's rows (update/update, update/delete, delete/delete, children of
    # parents A deleted, insert/insert on doc keys).
    _exec(b, "INSERT INTO parent VALUES (?, ?, ?, ?, ?)", [(i, f"b{i}", i, 2.25, None) for i in range(20001, 21201)])
    _exec(b, "INSERT INTO child VALUES (?, ?, ?)", [(i, "z", "b") for i in range(20001, 21201)])
    _exec(b, "UPDATE parent SET name = 'B ' || name WHERE id BETWEEN 200 AND 450")
    _exec(b, "UPDATE parent SET qty = -qty WHERE id BETWEEN 510 AND 530")
    _exec(b, "INSERT INTO child VALUES (?, ?, ?)", [(i, "b", "b on a deleted parent") for i in range(531, 541)])
    _exec(b, "DELETE FROM parent WHERE id BETWEEN 550 AND 600")
    _exec(b, "DELETE FROM child WHERE parent_id BETWEEN 380 AND 420 AND label = 'x'")
    _exec(b, "INSERT INTO doc VALUES (?, ?, ?)", [(f"dup{i:03}", f"B's {i}", 4) for i in range(20, 60)])
    _exec(b, "DELETE FROM doc WHERE slug BETWEEN 'd0050' AND 'd0149'")
    for db in dbs.values():
        db.close()
    return paths


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _build(tmp_path_factory.mktemp("kill-template"))


def _copy(template: dict[str, Path], folder: Path, wal: bool) -> dict[str, Path]:
    folder.mkdir()
    out = {}
    for name, src in template.items():
        dst = folder / src.name
        shutil.copyfile(src, dst)
        conn = sqlite3.connect(dst)
        conn.execute(f"PRAGMA journal_mode = {'WAL' if wal else 'DELETE'}")
        conn.close()
        with peersync.connect(dst) as db:  # each copy stands for its template peer, used apart from it
            db.reidentify(SCOPE, moved=True)
        out[name] = dst
    return out


def _cli(*args: str) -> list[str]:
    exe = shutil.which("peersync")
    if exe:
        return [exe, *args]
    return [sys.executable, "-c", "from peersync._cli.main import main; main()", *args]


def _full_round(paths: list[Path]) -> None:
    """Sync every pair (and once more) so that every replica has seen every change."""
    dbs = [peersync.connect(p) for p in paths]
    try:
        for x, y in [(0, 1), (1, 2), (0, 2), (0, 1)]:
            peersync.sync(dbs[x], dbs[y], SCOPE, batch_size=500)
        for x, y in [(0, 1), (1, 2), (0, 2)]:
            again = peersync.sync(dbs[x], dbs[y], SCOPE, batch_size=500)
            assert (again.sent_a_to_b, again.sent_b_to_a, again.errors) == (0, 0, 0), again.to_dict()
    finally:
        for db in dbs:
            db.close()


def _data(path: Path) -> dict[str, list[Row]]:
    conn = sqlite3.connect(path)
    try:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in TABLES}
    finally:
        conn.close()


def _conflict_log(paths: list[Path]) -> list[tuple[Any, ...]]:
    """Every replica's logged conflicts, constraint errors aside (those depend on batch boundaries)."""
    out = []
    for p in paths:
        conn = sqlite3.connect(p)
        out += [
            (p.stem, *r)
            for r in conn.execute(
                "SELECT tbl, key, type, outcome, local_version, remote_version FROM _peersync_conflicts"
                " WHERE type != 'error'"
            )
        ]
        conn.close()
    return sorted(out)


@dataclass
class Plan:
    pair: tuple[str, str]
    batch: int
    wal: bool
    delay: float
    writer: str | None  # None, "hang" (killed mid-transaction before the sync), "loop" (during it)


def _start(cmd: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _kill(proc: subprocess.Popen[str]) -> tuple[int, str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    return proc.returncode, err


def _writer(db: Path, mode: str, seed: int) -> subprocess.Popen[str]:
    proc = _start([sys.executable, str(WORKER), str(db), mode, str(seed)])
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "ready", f"writer did not start: {line!r} {_kill(proc)[1]}"
    return proc


def _sync_cmd(paths: dict[str, Path], plan: Plan) -> list[str]:
    x, y = plan.pair
    return _cli("sync", str(paths[x]), str(paths[y]), "--scope", SCOPE, "--batch-size", str(plan.batch), "--json")


PAIRS = [("A", "B"), ("B", "A"), ("A", "C"), ("C", "B")]


@dataclass
class Reference:
    startup: float  # seconds before the CLI can do anything (interpreter and imports)
    seconds: float  # one uninterrupted CLI session, process start included
    data: dict[str, list[Row]]  # what a full round converges to after it
    conflicts: list[tuple[Any, ...]]  # the conflicts a full round logs, errors aside


@pytest.fixture(scope="module")
def references(template: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Reference]:
    """Per pair: how long an uninterrupted session takes, and the rows everything converges to."""
    start = time.perf_counter()
    subprocess.run(_cli("--version"), capture_output=True, check=True)
    startup = time.perf_counter() - start
    out = {}
    for pair in PAIRS:
        paths = _copy(template, tmp_path_factory.mktemp("ref") / "run", wal=False)
        start = time.perf_counter()
        proc = subprocess.run(_sync_cmd(paths, Plan(pair, 50, False, 0, None)), capture_output=True, text=True)
        seconds = time.perf_counter() - start
        assert proc.returncode == 0, proc.stderr
        check_consistent(list(paths.values()))
        _full_round(list(paths.values()))
        out[pair] = Reference(startup, seconds, _data(paths["A"]), _conflict_log(list(paths.values())))
    return out


def _plans(rng: random.Random, references: dict[tuple[str, str], Reference], n: int) -> Iterator[Plan]:
    for i in range(n):
        pair = PAIRS[i % len(PAIRS)] if i < len(PAIRS) else rng.choice(PAIRS)
        writer = rng.choices([None, "hang", "loop"], weights=[6, 1, 1])[0]
        # The process start takes a good part of a session of a few thousand rows: kill in it now and
        # then, otherwise anywhere from the first batch to a little after the end.
        ref = references[pair]
        delay = rng.uniform(0, ref.startup) if rng.random() < 0.15 else rng.uniform(ref.startup, 1.2 * ref.seconds)
        yield Plan(pair, 50, rng.random() < 0.5, delay, writer)


def test_kill_sync_at_random_points(
    template: dict[str, Path], references: dict[tuple[str, str], Reference], tmp_path: Path
) -> None:
    print(f"PEERSYNC_KILL_SEED={SEED}")
    rng = random.Random(SEED)
    before = {n: snapshot(p).knowledge for n, p in template.items()}
    landed = {"before": 0, "during": 0, "after": 0}
    for run, plan in enumerate(_plans(rng, references, RUNS)):
        where = f"seed {SEED} run {run} {plan}"
        paths = _copy(template, tmp_path / f"run{run}", plan.wal)
        writer = None
        if plan.writer is not None:
            writer = _writer(paths[rng.choice(plan.pair)], plan.writer, run)
            if plan.writer == "hang":
                _kill(writer)
        proc = _start(_sync_cmd(paths, plan))
        time.sleep(plan.delay)  # the random kill point itself, not a synchronization
        rc, err = _kill(proc)
        if writer is not None:
            _kill(writer)
        assert rc in (0, -signal.SIGKILL), f"{where}: exit {rc}: {err}"
        stage = "after the kill"
        try:
            snaps = check_consistent(list(paths.values()))
            if rc == 0:
                landed["after"] += 1
            elif all(s.knowledge == before[s.name] for s in snaps):
                landed["before"] += 1
            else:
                landed["during"] += 1
            # The resumed session sends only what is missing, then everything converges.
            stage = "resuming"
            x, y = (RecordingPeer(peersync.connect(paths[n])) for n in plan.pair)
            try:
                peersync.sync(x, y, SCOPE, batch_size=plan.batch)
                assert x.redundant() == [] and y.redundant() == [], "the resumed session resent known changes"
            finally:
                x.close()
                y.close()
            check_consistent(list(paths.values()))
            stage = "in a full round"
            _full_round(list(paths.values()))
            datas = [_data(p) for p in paths.values()]
            assert datas[0] == datas[1] == datas[2], "replicas differ after a full round"
            if plan.writer != "loop":  # a writer during the sync makes other data
                assert datas[0] == references[plan.pair].data, "a killed session changed the outcome"
                conflicts = _conflict_log(list(paths.values()))
                assert conflicts == references[plan.pair].conflicts, "conflicts lost or logged twice"
        except AssertionError as exc:
            raise AssertionError(f"{where}, {stage}: {exc}") from exc
        shutil.rmtree(paths["A"].parent)
    print(f"kills landed: {landed}")
    assert landed["during"] >= RUNS // 4, landed


def test_the_check_flags_knowledge_that_data_lacks(template: dict[str, Path], tmp_path: Path) -> None:
    """The checks above must be able to fail: forge B's knowledge to claim one change of A, and lose a
    tracking row."""
    paths = _copy(template, tmp_path / "forged", wal=False)
    a, b = snapshot(paths["A"]), snapshot(paths["B"])
    assert overclaims(a, b) == [] and overclaims(b, a) == []
    # A change of A that B lacks, to a row B has not changed concurrently.
    newest = max(
        v[1]
        for table, rows in a.rows.items()
        for key, (v, _) in rows.items()
        if v[0] == a.rid and (key not in b.rows[table] or b.rows[table][key][0] in a.knowledge)
    )
    assert (a.rid, newest) not in b.knowledge
    conn = sqlite3.connect(paths["B"])
    with conn:
        (stored,) = conn.execute("SELECT knowledge FROM _peersync_scopes WHERE name = ?", (SCOPE,)).fetchone()
        forged = Knowledge.from_bytes(stored).add(a.rid, newest)
        conn.execute("UPDATE _peersync_scopes SET knowledge = ? WHERE name = ?", (forged.to_bytes(), SCOPE))
    conn.close()
    assert len(overclaims(a, snapshot(paths["B"]))) == 1
    with pytest.raises(AssertionError, match="1 overclaimed"):
        check_consistent(list(paths.values()))
    conn = sqlite3.connect(paths["C"])
    with conn:
        conn.execute("DELETE FROM _peersync_t_doc WHERE k0 = 'd0000'")
    conn.close()
    assert snapshot(paths["C"]).problems == ["doc ('d0000',): row without tracking"]


BIG_SCHEMA = """
CREATE TABLE big (id INTEGER PRIMARY KEY, name TEXT NOT NULL, v REAL);
CREATE TABLE tagged (code TEXT NOT NULL, n INTEGER NOT NULL, big_id INTEGER REFERENCES big(id), PRIMARY KEY (code, n));
"""
BIG_ROWS, TAGGED_ROWS = 200_000, 50_000
INIT_KILLS = 6


def _user_digest(conn: sqlite3.Connection) -> tuple[Any, ...]:
    return (
        *conn.execute("SELECT count(*), sum(id), sum(length(name)), total(v) FROM big").fetchone(),
        *conn.execute("SELECT count(*), sum(n), sum(length(code)), sum(big_id) FROM tagged").fetchone(),
    )


def _peersync_objects(conn: sqlite3.Connection) -> set[tuple[str, str]]:
    return set(
        conn.execute(
            "SELECT type, name FROM sqlite_master WHERE name LIKE '%peersync%' OR tbl_name LIKE '%peersync%'"
        ).fetchall()
    )


def test_kill_during_init_leaves_all_or_nothing(tmp_path: Path) -> None:
    """``peersync init`` of a 250k-row scope killed at random points: either the scope is fully
    provisioned (every object, every row tracked) or no peersync object exists; user data is intact."""
    print(f"PEERSYNC_KILL_SEED={SEED}")
    rng = random.Random(SEED)
    original = tmp_path / "big.db"
    conn = sqlite3.connect(original)
    conn.executescript(BIG_SCHEMA)
    with conn:
        conn.executemany("INSERT INTO big VALUES (?, ?, ?)", ((i, f"name {i}", i / 3) for i in range(1, BIG_ROWS + 1)))
        conn.executemany(
            "INSERT INTO tagged VALUES (?, ?, ?)", ((f"c{i % 97}", i, i) for i in range(1, TAGGED_ROWS + 1))
        )
    digest = _user_digest(conn)
    conn.close()
    cmd = _cli("init", "DB", "--scope", SCOPE, "--table", "big", "--table", "tagged")

    # Calibrate on an uninterrupted run, which also gives the complete set of objects.
    full = tmp_path / "full.db"
    shutil.copyfile(original, full)
    start = time.perf_counter()
    subprocess.run([full.as_posix() if c == "DB" else c for c in cmd], check=True, capture_output=True)
    seconds = time.perf_counter() - start
    conn = sqlite3.connect(full)
    complete = _peersync_objects(conn)
    conn.close()
    assert len(complete) >= 5 + 2 + 6, complete  # metadata tables, tracking tables, triggers

    outcomes = []
    for run in range(INIT_KILLS):
        db = tmp_path / f"init{run}.db"
        shutil.copyfile(original, db)
        wal = run % 2 == 1
        conn = sqlite3.connect(db)
        conn.execute(f"PRAGMA journal_mode = {'WAL' if wal else 'DELETE'}")
        conn.close()
        delay = rng.uniform(0, 1.2 * seconds)
        proc = _start([db.as_posix() if c == "DB" else c for c in cmd])
        time.sleep(delay)  # the random kill point
        rc, err = _kill(proc)
        where = f"seed {SEED} run {run} wal={wal} delay={delay:.3f}s of {seconds:.3f}s"
        assert rc in (0, -signal.SIGKILL), f"{where}: exit {rc}: {err}"
        conn = sqlite3.connect(db)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)], where
            assert _user_digest(conn) == digest, where
            objects = _peersync_objects(conn)
            assert objects in (set(), complete), f"{where}: half provisioned: {sorted(objects)}"
            if objects:
                tracked = [
                    conn.execute(f"SELECT count(*), sum(del), count(DISTINCT lt), min(lt), max(lt) FROM {t}").fetchone()
                    for t in ("_peersync_t_big", "_peersync_t_tagged")
                ]
                assert [t[:2] for t in tracked] == [(BIG_ROWS, 0), (TAGGED_ROWS, 0)], where
                lts = sorted(t[2:] for t in tracked)
                assert lts == [
                    (TAGGED_ROWS, 1, TAGGED_ROWS),
                    (BIG_ROWS, TAGGED_ROWS + 1, BIG_ROWS + TAGGED_ROWS),
                ] or lts == [(TAGGED_ROWS, BIG_ROWS + 1, BIG_ROWS + TAGGED_ROWS), (BIG_ROWS, 1, BIG_ROWS)], where
                assert conn.execute("SELECT count(*) FROM _peersync_scopes").fetchone() == (1,), where
        finally:
            conn.close()
        if objects:
            assert snapshot(db).problems == [], where  # every row tracked, in the log, no floor left
        outcomes.append("complete" if objects else "none")
        # Whatever the kill left, init again finishes the job.
        with peersync.connect(db) as d:
            assert d.provision(SCOPE, ["big", "tagged"]) is (not objects), where
            st = d.status(SCOPE)[0]
            assert (st.tracked_rows, st.tombstones, st.tick) == (BIG_ROWS + TAGGED_ROWS, 0, BIG_ROWS + TAGGED_ROWS)
        db.unlink()
    print(f"init kills: {outcomes}")


class _WritesAfterDescribe:
    """A source peer to which a foreign writer commits right after it described itself (a session's
    snapshot), before batches are enumerated: what the concurrent writer of the kill runs does. With
    ``every=True`` it writes after every description, so the source never stands still."""

    def __init__(self, peer: peersync.Database, *statements: str, every: bool = False) -> None:
        self.peer, self.url, self.statements, self.every = peer, peer.url, statements, every
        self.writes = 0

    def describe(self, scope: str) -> Any:
        info = self.peer.describe(scope)
        if self.every or not self.writes:
            for st in self.statements:
                _exec(Path(self.peer.path), st)
            self.writes += 1
        return info

    def __getattr__(self, name: str) -> Any:
        return getattr(self.peer, name)


@contextlib.contextmanager
def _c_row_at_a(tmp_path: Path) -> Iterator[tuple[dict[str, Path], dict[str, peersync.Database]]]:
    """Three provisioned SQLite peers A, B, C; C inserts row 1 and pushes it to A."""
    paths = {n: tmp_path / f"{n}.db" for n in "ABC"}
    for p in paths.values():
        conn = sqlite3.connect(p)
        conn.executescript(SCHEMA)
        conn.close()
    dbs = {n: peersync.connect(p) for n, p in paths.items()}
    try:
        for db in dbs.values():
            db.provision(SCOPE, TABLES)
        _exec(paths["C"], "INSERT INTO parent VALUES (1, 'from C', 1, NULL, NULL)")
        peersync.sync(dbs["C"], dbs["A"], SCOPE, direction="push")
        yield paths, dbs
    finally:
        for db in dbs.values():
            db.close()


def test_a_source_write_during_a_session_is_not_claimed_by_the_destination(tmp_path: Path) -> None:
    """Found by the kill runs with a concurrent writer. C inserts a row, A receives it; a session A -> B
    starts, then A edits the row, so its tick is above the session's first snapshot. Either the session
    follows the source and delivers the edit, or (a source that changes on every look) it stops: B must
    then not learn C's insert either (it holds nothing of it), otherwise B's own insert of that key later
    replaces C's row at C without the insert/insert conflict ever being seen."""
    with _c_row_at_a(tmp_path) as (paths, dbs):
        # One racing write: the session follows it and delivers the edit.
        once = _WritesAfterDescribe(dbs["A"], "UPDATE parent SET qty = 2 WHERE id = 1")
        peersync.run_session(once, dbs["B"], SCOPE)  # type: ignore[arg-type]
        assert _data(paths["B"])["parent"] == [(1, "from C", 2, None, None)]
        snaps = {n: snapshot(p) for n, p in paths.items()}
        assert overclaims(snaps["A"], snaps["B"]) == overclaims(snaps["C"], snaps["B"]) == []


def test_a_source_that_never_stands_still_is_not_claimed_by_the_destination(tmp_path: Path) -> None:
    """As above, but A changes the row after every description: the session gives up following it, and
    B, holding nothing of the row, must claim nothing of it."""
    with _c_row_at_a(tmp_path) as (paths, dbs):
        racing = _WritesAfterDescribe(dbs["A"], "UPDATE parent SET qty = qty + 1 WHERE id = 1", every=True)
        peersync.run_session(racing, dbs["B"], SCOPE)  # type: ignore[arg-type]
        assert _data(paths["B"])["parent"] == []  # the edit comes in a later session
        snaps = {n: snapshot(p) for n, p in paths.items()}
        assert overclaims(snaps["C"], snaps["B"]) == []
        # The harm: B creates the same key; C must see an insert/insert conflict and, under
        # destination-wins, keep its row.
        _exec(paths["B"], "INSERT INTO parent VALUES (1, 'from B', 9, NULL, NULL)")
        result = peersync.sync(dbs["B"], dbs["C"], SCOPE, direction="push", policy=peersync.Policy.DESTINATION_WINS)
        assert result.conflicts == 1
        assert _data(paths["C"])["parent"] == [(1, "from C", 1, None, None)]
