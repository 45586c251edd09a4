"""Attacks on session 5's work: SQLite's refusal of values a REAL/DECIMAL
column would change (``sqlite/fit.py``), JSON documents that are numbers,
clones carrying UNIQUE constraints, and read-ahead with a conflict callback
that raises. Three peers (SQLite, PostgreSQL, MariaDB) wherever one value's
travel through all three is the question. Each test states the promise
(``SEMANTICS.md``: convergence, no lost update, no redundancy)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import peersync
from tests.servers.conftest import run

Peers = tuple[str, str, str]


def _three(
    make_pg: Callable[[], str], mysql_db: Callable[[], str], tmp_path: Path, pg: str, my: str, lite: str
) -> Peers:
    """A PostgreSQL, a MariaDB and a SQLite peer, each with ``t`` made by its
    statement and provisioned in scope ``s``."""
    p, m, s = make_pg(), mysql_db(), str(tmp_path / "a.db")
    for url, ddl in ((p, pg), (m, my), (s, lite)):
        run(url, ddl)
        with peersync.connect(url) as db:
            db.provision("s", ["t"])
    return p, m, s


def _sync(a: str, b: str, **kw: Any) -> peersync.SyncResult:
    with peersync.connect(a) as x, peersync.connect(b) as y:
        return peersync.sync(x, y, "s", **kw)


def _round(peers: Peers) -> list[peersync.SyncResult]:
    """Every pair, both ways: PG<->SQLite, SQLite<->MariaDB, MariaDB<->PG."""
    p, m, s = peers
    return [_sync(p, s), _sync(s, m), _sync(m, p)]


def _sent(results: list[peersync.SyncResult]) -> int:
    return sum(r.sent_a_to_b + r.sent_b_to_a for r in results)


def _texts(peers: Peers, column: str) -> list[list[tuple[Any, ...]]]:
    """``column`` of every row as text on each peer, in key order."""
    p, m, s = peers
    return [
        run(p, f"SELECT id, {column}::text FROM t ORDER BY id"),
        run(m, f"SELECT id, CAST({column} AS CHAR) FROM t ORDER BY id"),
        [
            (i, None if v is None else (repr(v) if isinstance(v, float) else str(v)))
            for i, v in run(s, f"SELECT id, {column} FROM t ORDER BY id")
        ],
    ]


# -- 1. JSON documents that are numbers, through all three peers ---------------------------------------------------

JSON_DDL = ("CREATE TABLE t (id integer PRIMARY KEY, doc json)",) * 2 + (
    "CREATE TABLE t (id INTEGER PRIMARY KEY, doc JSON)",
)


def test_json_strings_that_look_like_numbers_converge_without_ping_pong(
    make_pg: Callable[[], str], mysql_db: Callable[[], str], tmp_path: Path
) -> None:
    """Documents written on SQLite (numbers, strings spelling numbers,
    objects): after SQLite -> PG -> MariaDB -> SQLite every peer holds the
    same documents, and a further round sends nothing."""
    peers = _three(make_pg, mysql_db, tmp_path, *JSON_DDL)
    s = peers[2]
    run(s, "INSERT INTO t VALUES (1, '5'), (2, '\"5\"'), (3, '2.5'), (4, '{\"n\": 5}'), (5, '\"2.50\"'), (6, '-3')")
    _round(peers)
    _round(peers)
    texts = _texts(peers, "doc")
    assert texts[0] == texts[1] == texts[2], texts
    assert _sent(_round(peers)) == 0


def test_a_servers_non_canonical_number_documents_are_refused_by_sqlite_never_changed(
    make_pg: Callable[[], str], mysql_db: Callable[[], str], tmp_path: Path
) -> None:
    """PostgreSQL's ``json`` keeps a document's text as written ('2.50',
    '1e2', '-0', '10.0'); SQLite's JSON column (NUMERIC affinity) would store
    the number, which travels on as '2.5', '100', '0', '10': another document.
    SQLite refuses each (an error conflict naming the column, every round,
    never a silently changed value); the servers hold the documents alike;
    a document SQLite keeps ('7') arrives everywhere."""
    peers = _three(make_pg, mysql_db, tmp_path, *JSON_DDL)
    p, _, lite = peers
    run(p, "INSERT INTO t VALUES (1, '2.50'), (2, '1e2'), (3, '-0'), (4, '10.0'), (5, '7')")
    for _ in range(3):
        results = _round(peers)
    assert sum(r.errors for r in results) == 8  # rows 1-4, from PostgreSQL and from MariaDB
    texts = _texts(peers, "doc")
    assert texts[0] == texts[1], texts
    assert run(lite, "SELECT id, doc FROM t") == [(5, 7)]
    with peersync.connect(lite) as db:
        details = [c.detail for c in db.conflicts("s")]
    assert any("column doc" in d and "2.50" in d for d in details), details


@pytest.mark.parametrize("kind", ["pg", "mysql"])
def test_minimal_a_servers_2_50_document_and_sqlite(kind: str, request: Any, tmp_path: Path) -> None:
    """Minimal history: the server inserts the document 2.50; sync with
    SQLite both ways, twice: SQLite refuses it both times (it would hold
    another document), and the server keeps it."""
    url = request.getfixturevalue("make_pg" if kind == "pg" else "mysql_db")()
    lite = str(tmp_path / "a.db")
    run(url, "CREATE TABLE t (id integer PRIMARY KEY, doc json)", "INSERT INTO t VALUES (1, '2.50')")
    run(lite, "CREATE TABLE t (id INTEGER PRIMARY KEY, doc JSON)")
    for u in (url, lite):
        with peersync.connect(u) as db:
            db.provision("s", ["t"])
    assert _sync(url, lite).errors == 1
    assert _sync(url, lite).errors == 1
    text = "SELECT doc::text FROM t" if kind == "pg" else "SELECT CAST(doc AS CHAR) FROM t"
    assert run(url, text) == [("2.50",)]
    assert run(lite, "SELECT * FROM t") == []


# -- 2. Decimals and reals at the edges of fit.py's rules -----------------------------------------------------------

DEC_DDL = (
    "CREATE TABLE t (id integer PRIMARY KEY, d numeric(40, 10), r double precision)",
    "CREATE TABLE t (id INT PRIMARY KEY, d DECIMAL(40, 10), r DOUBLE)",
    "CREATE TABLE t (id INTEGER PRIMARY KEY, d DECIMAL(40, 10), r REAL)",
)
DECIMALS = [
    "123456789012345",  # 15 significant digits: kept
    "1234567890123456",  # 16: a double holds it
    "12345678901234567",  # 17: not a double
    "0.123456789012345",
    "1.2300000000",
    "-0.0000000000",
    "99999999999999999999",
    "0.1000000001",
]


def _decimal_edges(make_pg: Callable[[], str], mysql_db: Callable[[], str], tmp_path: Path) -> tuple[Peers, list[Any]]:
    peers = _three(make_pg, mysql_db, tmp_path, *DEC_DDL)
    p = peers[0]
    for i, d in enumerate(DECIMALS, 1):
        run(p, "INSERT INTO t VALUES (%s, %s::numeric, NULL)", params=(i, d))
    return peers, [_round(peers) for _ in range(2)]


def test_decimal_edges_every_refused_row_comes_again(
    make_pg: Callable[[], str], mysql_db: Callable[[], str], tmp_path: Path
) -> None:
    """PG -> SQLite/MariaDB: what SQLite refuses is refused again in every
    later session (never counted as known), the servers hold PG's numbers
    exactly, and SQLite holds every row it took as the same number."""
    peers, rounds = _decimal_edges(make_pg, mysql_db, tmp_path)
    p, m, s = peers
    # Round 1: MariaDB gets PG's rows only in its last session; from round 2 on SQLite refuses them from both.
    first, second = (sum(r.errors for r in rs) for rs in rounds)
    assert (first, second) == (2, 4), (first, second)
    again = _round(peers)
    assert sum(r.errors for r in again) == second
    assert sorted(i for (i,) in run(s, "SELECT id FROM t")) == [1, 2, 4, 5, 6, 8]
    assert [v for v in run(p, "SELECT d FROM t ORDER BY id")] == [v for v in run(m, "SELECT d FROM t ORDER BY id")]
    from decimal import Decimal

    lite = dict(run(s, "SELECT id, d FROM t"))
    for i, d in run(p, "SELECT id, d::text FROM t ORDER BY id"):  # PG's numbers, at scale 10
        if i in lite:
            assert Decimal(repr(lite[i]) if isinstance(lite[i], float) else str(lite[i])) == Decimal(d), (i, lite[i])


def test_a_refused_row_arrives_once_it_fits(
    make_pg: Callable[[], str], mysql_db: Callable[[], str], tmp_path: Path
) -> None:
    """A 17-digit decimal SQLite refused, then changed on MariaDB to a value
    that fits: it reaches SQLite and PostgreSQL, and all three agree."""
    peers, _ = _decimal_edges(make_pg, mysql_db, tmp_path)
    p, m, s = peers
    run(m, "UPDATE t SET d = 12.5 WHERE id IN (3, 7)")
    for _ in range(2):
        rs = _round(peers)
    assert sum(r.errors for r in rs) == 0, rs
    assert run(s, "SELECT id, d FROM t WHERE id IN (3, 7) ORDER BY id") == [(3, 12.5), (7, 12.5)]
    assert run(p, "SELECT d::text FROM t WHERE id = 3") == [("12.5000000000",)]


def test_reals_at_the_edges_converge(make_pg: Callable[[], str], mysql_db: Callable[[], str], tmp_path: Path) -> None:
    """Real columns: -0.0 and NaN written on PG, huge integers and '1e5'
    text written on SQLite. Every peer ends with the same numbers for the
    rows it holds; refusals repeat rather than vanish; then silence bar them."""
    peers = _three(make_pg, mysql_db, tmp_path, *DEC_DDL)
    p, m, s = peers
    run(p, "INSERT INTO t VALUES (1, NULL, '-0'), (2, NULL, 'NaN'), (3, NULL, 1e300)")
    run(s, "INSERT INTO t VALUES (4, NULL, 9007199254740993), (5, NULL, '1e5'), (6, '1e5', 0.1)")
    rounds = [_round(peers) for _ in range(3)]
    # -0.0 and NaN (rows 1, 2) are refused by SQLite and by MariaDB, in every round, from PG each time.
    assert [sum(r.errors for r in rs) for rs in rounds] == [4, 4, 4]
    held = [(3, 1e300), (4, 9007199254740992.0), (5, 100000.0), (6, 0.1)]
    assert run(m, "SELECT id, r FROM t ORDER BY id") == held
    assert run(s, "SELECT id, r FROM t ORDER BY id") == held
    assert run(p, "SELECT id, r FROM t WHERE id > 2 ORDER BY id") == held
    assert run(s, "SELECT d, typeof(d) FROM t WHERE id = 6") == [(100000, "integer")]
    last = _round(peers)
    assert _sent(last) == sum(r.errors for r in last) == 4  # only the refused rows, again


# -- 3. Read-ahead: a conflict callback that raises mid-session -------------------------------------------------------

ITEM_DDL = {
    "pg": "CREATE TABLE t (id integer PRIMARY KEY, v text)",
    "mysql": "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(40))",
}
N = 300


class Boom(BaseException):
    """Not an Exception (a KeyboardInterrupt's kind): decide() lets it through, the session aborts."""


def _conflicting(kind: str, request: Any, tmp_path: Path) -> tuple[str, str]:
    """A server of ``kind`` and a SQLite file, synced with N rows, then every row updated on both."""
    url = request.getfixturevalue("make_pg" if kind == "pg" else "mysql_db")()
    lite = str(tmp_path / "a.db")
    run(url, ITEM_DDL[kind])
    run(lite, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    for u in (url, lite):
        with peersync.connect(u) as db:
            db.provision("s", ["t"])
    run(url, *[f"INSERT INTO t VALUES ({i}, 'base')" for i in range(1, N + 1)])
    assert _sync(url, lite).errors == 0
    run(url, "UPDATE t SET v = 'server'")
    run(lite, "UPDATE t SET v = 'lite'")
    return url, lite


def _settles(url: str, lite: str) -> None:
    """No read-ahead thread left; one default sync converges; the next sends nothing."""
    import threading

    assert not [t for t in threading.enumerate() if t.name == "peersync-read-ahead"]
    r = _sync(url, lite)
    assert r.completed and r.errors == 0, r
    assert run(url, "SELECT id, v FROM t ORDER BY id") == run(lite, "SELECT id, v FROM t ORDER BY id")
    again = _sync(url, lite)
    assert again.sent_a_to_b + again.sent_b_to_a == 0, again


def _raising_at(n: int, exc: BaseException) -> Callable[[peersync.Conflict], peersync.Outcome]:
    calls: list[peersync.Conflict] = []

    def callback(c: peersync.Conflict) -> peersync.Outcome:
        calls.append(c)
        if len(calls) == n:
            raise exc
        return peersync.Outcome.SOURCE

    return callback


@pytest.mark.parametrize("server_is", ["destination", "source"])
@pytest.mark.parametrize("kind", ["pg", "mysql"])
def test_a_callback_raising_an_exception_defers_its_row_only(
    kind: str, server_is: str, request: Any, tmp_path: Path
) -> None:
    """rules.decide: a callback that raises defers that row; the session
    (batches of 10, read ahead) goes on and the row comes again next time."""
    url, lite = _conflicting(kind, request, tmp_path)
    src, dst = (lite, url) if server_is == "destination" else (url, lite)
    r = _sync(src, dst, direction="push", batch_size=10, policy=_raising_at(35, ValueError("no")))
    assert r.completed and r.conflicts == N, r
    mine = "server" if dst == url else "lite"
    assert [i for i, v in run(dst, "SELECT id, v FROM t ORDER BY id") if v == mine] == [35]
    _settles(url, lite)


@pytest.mark.parametrize("server_is", ["destination", "source"])
@pytest.mark.parametrize("kind", ["pg", "mysql"])
def test_a_callback_raising_a_base_exception_ends_the_session_cleanly(
    kind: str, server_is: str, request: Any, tmp_path: Path
) -> None:
    """A BaseException from the callback at the 35th conflict (4th batch of
    10, the read-ahead thread holding the next): it reaches the caller, the
    batches before stay applied, the thread is gone, and the next sync
    completes and converges."""
    url, lite = _conflicting(kind, request, tmp_path)
    src, dst = (lite, url) if server_is == "destination" else (url, lite)
    with pytest.raises(Boom):
        _sync(src, dst, direction="push", batch_size=10, policy=_raising_at(35, Boom()))
    theirs = "lite" if dst == url else "server"
    applied = [i for i, v in run(dst, "SELECT id, v FROM t ORDER BY id") if v == theirs]
    assert applied == list(range(1, 31)), applied
    _settles(url, lite)


# -- 4. Clone from PostgreSQL carrying UNIQUE: indexes stricter on the clone than on the source ------------------------

USERS = "CREATE TABLE users (id integer PRIMARY KEY, email text NOT NULL, active boolean NOT NULL, nick text UNIQUE)"


def test_a_clone_of_a_partial_unique_index_holds_every_source_row(make_pg: Callable[[], str], tmp_path: Path) -> None:
    """PostgreSQL's UNIQUE index ``WHERE active`` lets inactive rows share an
    email. The clone must hold every source row, take later ones alike
    (sync both ways, no error), and refuse what the source refuses."""
    url = make_pg()
    run(
        url,
        USERS,
        "CREATE UNIQUE INDEX users_live ON users (email) WHERE active",
        "CREATE UNIQUE INDEX users_nick ON users (lower(nick))",
        "INSERT INTO users VALUES (1, 'x@', true, 'Ann'), (2, 'x@', false, NULL), (3, 'x@', false, NULL)",
    )
    with peersync.connect(url) as db:
        db.provision("s", ["users"])
    clone = str(tmp_path / "clone.db")
    peersync.clone(url, clone, "s")
    assert len(run(clone, "SELECT * FROM users")) == 3
    run(url, "INSERT INTO users VALUES (4, 'x@', false, 'bob')")
    run(clone, "INSERT INTO users VALUES (5, 'x@', 0, 'BOB2')")
    r = _sync(url, clone)
    assert (r.errors, r.conflicts) == (0, 0), r
    assert run(url, "SELECT id FROM users ORDER BY id") == [(i,) for i in range(1, 6)]
    assert run(clone, "SELECT id FROM users ORDER BY id") == [(i,) for i in range(1, 6)]
    # The partial and expression indexes are left out of the clone (weaker, never stricter): two active
    # rows with one email go in there, and PG refuses the second as an error, kept pending, never lost.
    run(clone, "INSERT INTO users VALUES (6, 'y@', 1, NULL), (7, 'y@', 1, NULL)")
    r = _sync(clone, url, direction="push")
    assert (r.applied, r.errors) == (1, 1), r
    assert _sync(clone, url, direction="push").errors == 1
    assert len(run(clone, "SELECT * FROM users")) == 7


def test_clone_collisions_resolve_once_the_application_fixes_one(make_pg: Callable[[], str], tmp_path: Path) -> None:
    """A clone from PG with a UNIQUE column; each side takes one email for
    another key; sync both ways leaves errors, never a lost row; once one
    side changes its email, both converge and a further sync sends nothing."""
    url = make_pg()
    run(url, "CREATE TABLE users (id integer PRIMARY KEY, email text UNIQUE)", "INSERT INTO users VALUES (1, 'a@')")
    with peersync.connect(url) as db:
        db.provision("s", ["users"])
    clone = str(tmp_path / "clone.db")
    peersync.clone(url, clone, "s")
    run(url, "INSERT INTO users VALUES (2, 'x@')")
    run(clone, "INSERT INTO users VALUES (3, 'x@')")
    r = _sync(url, clone)
    assert r.errors > 0 or r.conflicts > 0, r
    assert (2, "x@") in run(url, "SELECT * FROM users") and (3, "x@") in run(clone, "SELECT * FROM users")
    run(clone, "UPDATE users SET email = 'z@' WHERE id = 3")
    for _ in range(2):
        _sync(url, clone)
    want = [(1, "a@"), (2, "x@"), (3, "z@")]
    assert run(url, "SELECT * FROM users ORDER BY id") == run(clone, "SELECT * FROM users ORDER BY id") == want
    last = _sync(url, clone)
    assert last.sent_a_to_b + last.sent_b_to_a == 0, last


# -- 5. MariaDB's seal mark: a writer open across sessions, the mark moving at every seal ---------------------------


@pytest.mark.parametrize("by_id", [3, 100_000])
def test_a_writer_open_across_sessions_is_never_skipped_by_the_mark(
    by_id: int, mysql_db: Callable[[], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MARK_AGE_MS = 0 (the mark may move at every seal) and, in one case,
    the seq-index path (few ids read by id). A writer updates row 1, stays
    open through six sessions while others commit, then inserts row 99 and
    commits: both reach SQLite, once, and then nothing more is sent."""
    from peersync._adapters.mysql import schema as S
    from tests.mysql.conftest import raw

    monkeypatch.setattr(S, "MARK_AGE_MS", 0)
    monkeypatch.setattr(S, "_BY_ID", by_id)
    url, lite = mysql_db(), str(tmp_path / "a.db")
    run(url, ITEM_DDL["mysql"], "INSERT INTO t VALUES (1, 'a'), (2, 'b')")
    run(lite, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    for u in (url, lite):
        with peersync.connect(u) as db:
            db.provision("s", ["t"])
    _sync(url, lite)
    late = raw(url, autocommit=False)
    try:
        late.cursor().execute("UPDATE t SET v = 'late' WHERE id = 1")
        for n in range(6):
            run(url, *[f"INSERT INTO t VALUES ({10 * n + k + 10}, 'x')" for k in range(5)])
            _sync(url, lite)
        late.cursor().execute("INSERT INTO t VALUES (99, 'late')")
        _sync(url, lite)
        assert run(lite, "SELECT v FROM t WHERE id IN (1, 99) ORDER BY id") == [("a",)]
        late.commit()
    finally:
        late.close()
    r = _sync(url, lite)
    assert r.sent_a_to_b == 2, r
    assert run(lite, "SELECT id, v FROM t ORDER BY id") == run(url, "SELECT id, v FROM t ORDER BY id")
    again = _sync(url, lite)
    assert again.sent_a_to_b + again.sent_b_to_a == 0, again


def test_sixteen_digit_decimals_are_kept_exactly_or_refused(
    make_pg: Callable[[], str], mysql_db: Callable[[], str], tmp_path: Path
) -> None:
    """16 significant digits (the texts fit.py probes): 2**53 + 1 has no
    double, 123456789012345.6 and 0.1234567890123456 have one whose repr is
    them, 9999999999999999 rounds up to 1e16. SQLite holds each as exactly
    that number or refuses it, every session; the servers agree exactly."""
    peers = _three(make_pg, mysql_db, tmp_path, *DEC_DDL)
    p, m, s = peers
    values = ["9007199254740993", "123456789012345.6", "0.1234567891", "9999999999999999", "4503599627370497.5"]
    for i, d in enumerate(values, 1):
        run(p, "INSERT INTO t VALUES (%s, %s::numeric, NULL)", params=(i, d))
    rounds = [_round(peers) for _ in range(3)]
    from decimal import Decimal

    lite = dict(run(s, "SELECT id, d FROM t"))
    for i, d in run(p, "SELECT id, d::text FROM t ORDER BY id"):
        if i in lite:
            got = Decimal(repr(lite[i]) if isinstance(lite[i], float) else str(lite[i]))
            assert got == Decimal(d), (i, lite[i], d)
    refused = len(values) - len(lite)
    assert refused > 0
    assert [sum(r.errors for r in rs) for rs in rounds][1:] == [2 * refused] * 2
    assert run(p, "SELECT d FROM t ORDER BY id") == run(m, "SELECT d FROM t ORDER BY id")


# -- 6. Clone over HTTP: an error that is not a SyncError after the wait frames began -------------------------------


@pytest.mark.parametrize("fail", [OSError(28, "No space left on device"), RuntimeError("bug in the writer")])
def test_a_plain_error_after_wait_frames_reaches_the_client_typed(
    fail: BaseException, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The snapshot file fails after the server began answering (wait
    frames), with an OSError (disk full) or any other exception: the client
    gets a peersync error (no hang, no bare socket error), and the server
    then serves a whole snapshot to the next client."""
    import io
    import time

    from peersync._transports.http import snapshot as snapshot_module
    from peersync._transports.http.client import HTTPPeer
    from tests.http.threaded import ThreadedServer

    db = tmp_path / "served.db"
    run(
        str(db),
        "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER)",
        "INSERT INTO item VALUES (1, 'a', 1)",
    )
    with peersync.connect(str(db)) as d:
        d.provision("s", ["item"])
    real = snapshot_module.scope_snapshot
    failing = [True]

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.8)
        if failing[0]:
            failing[0] = False
            raise fail
        return real(*args, **kwargs)

    monkeypatch.setattr(snapshot_module, "scope_snapshot", slow)
    monkeypatch.setattr(snapshot_module, "PATIENCE", 0.1)
    monkeypatch.setattr(snapshot_module, "KEEPALIVE", 0.2)
    server = ThreadedServer(db)
    try:
        started = time.monotonic()
        with HTTPPeer(server.url, timeout=1.0) as peer, pytest.raises(peersync.SyncError):
            peer.snapshot("s", io.BytesIO())
        assert time.monotonic() - started < 10
        out = io.BytesIO()
        with HTTPPeer(server.url, timeout=1.0) as peer:
            assert peer.snapshot("s", out) == len(out.getvalue()) > 0
    finally:
        server.stop()


# -- 7. Clone carrying a self-referencing foreign key ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["pg", "mysql"])
def test_a_self_referencing_foreign_key_on_a_clone_takes_children_before_parents(
    kind: str, request: Any, tmp_path: Path
) -> None:
    """emp.boss REFERENCES emp(id), carried to the clone. After the clone,
    the server adds a boss (id 9) and an employee of lower key (id 1) under
    it, then deletes an old boss whose report moves to the new one: the
    clone takes every row (key order puts the child first), and back."""
    url = request.getfixturevalue("make_pg" if kind == "pg" else "mysql_db")()
    run(
        url,
        "CREATE TABLE emp (id integer PRIMARY KEY, boss integer REFERENCES emp (id))"
        if kind == "pg"
        else "CREATE TABLE emp (id INT PRIMARY KEY, boss INT, FOREIGN KEY (boss) REFERENCES emp (id)) ENGINE=InnoDB",
        "INSERT INTO emp VALUES (5, NULL), (6, 5)",
    )
    with peersync.connect(url) as db:
        db.provision("s", ["emp"])
    clone = str(tmp_path / "clone.db")
    peersync.clone(url, clone, "s")
    assert "REFERENCES" in run(clone, "SELECT sql FROM sqlite_master WHERE name = 'emp'")[0][0].upper()
    run(
        url, "INSERT INTO emp VALUES (9, NULL)", "INSERT INTO emp VALUES (1, 9)", "UPDATE emp SET boss = 9 WHERE id = 6"
    )
    run(url, "DELETE FROM emp WHERE id = 5")
    r = _sync(url, clone)
    assert r.errors == 0, r
    want = [(1, 9), (6, 9), (9, None)]
    assert run(clone, "SELECT id, boss FROM emp ORDER BY id") == want
    run(clone, "INSERT INTO emp VALUES (3, NULL)", "INSERT INTO emp VALUES (2, 3)", "DELETE FROM emp WHERE id = 1")
    r = _sync(clone, url)
    assert r.errors == 0, r
    assert run(url, "SELECT id, boss FROM emp ORDER BY id") == run(clone, "SELECT id, boss FROM emp ORDER BY id")
    again = _sync(url, clone)
    assert again.sent_a_to_b + again.sent_b_to_a == 0, again


def test_jsonb_rewrites_converge_through_three_peers(
    make_pg: Callable[[], str], mysql_db: Callable[[], str], tmp_path: Path
) -> None:
    """PostgreSQL jsonb rewrites SQLite's documents (sorted keys, its
    spacing, 1.0 kept as 1.0, 1e2 as 100): its new versions must reach every
    peer, all three hold one text per row, then silence."""
    peers = _three(
        make_pg,
        mysql_db,
        tmp_path,
        "CREATE TABLE t (id integer PRIMARY KEY, doc jsonb)",
        JSON_DDL[1],
        JSON_DDL[2],
    )
    s = peers[2]
    run(s, "INSERT INTO t VALUES (1, '{\"b\":1,\"a\":[2.50, \"5\"]}'), (2, '[1e2, 0.10]'), (3, '\"x\"'), (4, '7')")
    for _ in range(3):
        _round(peers)
    texts = _texts(peers, "doc")
    assert texts[0] == texts[1] == texts[2], texts
    assert _sent(_round(peers)) == 0


def test_a_17_digit_number_document_on_sqlite_travels_exactly(make_pg: Callable[[], str], tmp_path: Path) -> None:
    """Minimal history: SQLite A inserts the JSON document
    0.30000000000000004 (stored as that REAL); A -> SQLite B and A -> PG.
    Every peer must hold the number A holds."""
    url, a, b = make_pg(), str(tmp_path / "a.db"), str(tmp_path / "b.db")
    run(url, "CREATE TABLE t (id integer PRIMARY KEY, doc json)")
    for path in (a, b):
        run(path, "CREATE TABLE t (id INTEGER PRIMARY KEY, doc JSON)")
    for u in (url, a, b):
        with peersync.connect(u) as db:
            db.provision("s", ["t"])
    run(a, "INSERT INTO t VALUES (1, '0.30000000000000004')")
    assert run(a, "SELECT doc FROM t") == [(0.30000000000000004,)]
    _sync(a, b)
    _sync(a, url)
    assert run(b, "SELECT doc FROM t") == [(0.30000000000000004,)]
    assert run(url, "SELECT doc::text FROM t") == [("0.30000000000000004",)]
