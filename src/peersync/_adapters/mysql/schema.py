"""MariaDB/MySQL objects peersync creates: metadata tables, tracking tables,
triggers; and the introspection of user tables.

Ticks (the tick contract of ``_engine/peer.py``). Writers take a tick inside
their transaction and commit in any order, so the order in which ticks are
*taken* cannot be the order in which peers enumerate them: a session that
read up to tick 9 while tick 5's transaction was still open would skip it
for ever. MariaDB has no commit hook and no ``pg_snapshot_xmin``, so ticks
are **sealed after commit**:

- a change appends a row to ``_peersync_log`` (an ``AUTO_INCREMENT`` id,
  ``seq`` NULL) from its trigger, inside the writer's transaction; the
  tracking row points at that id (``lt``). Writers share no row: each
  inserts its own log row (InnoDB's auto-increment lock is held for the
  statement, never to commit);
- :func:`seal` (run by ``describe`` before it reports a bound) numbers the
  *committed* unsealed rows: ``SELECT ... FOR UPDATE SKIP LOCKED`` on
  ``seq IS NULL`` returns exactly the rows whose inserting transaction has
  ended (an open transaction keeps its inserted rows locked), and each gets
  the next ``seq`` from ``_peersync_clock``; sealers serialize on that clock
  row, writers never touch it (the scan starts above a mark below which
  every entry is sealed: see :func:`seal`);
- the tick peers see is ``seq``: a row is sealed only after its writer
  committed, and later seals get larger numbers, so every change with a
  tick at or below ``_peersync_clock.seq`` is committed and visible. A late
  commit simply gets a later ``seq`` and is sent by the next session.

Per tracked table ``T``: ``_peersync_t_T`` keyed like ``T`` (same column
types and collations), with ``lt`` (the log id of the last change here),
``urep/utick`` and ``scope`` when the last change arrived through a scope,
the creation version (``crep/ctick`` when it came from a peer, ``cid`` the
log id of a local creation, all NULL when equal to the version), the change
time (ms), the tombstone flag and ``mw`` (the partial knowledge record of
an unfinished session the row came from).

Triggers (AFTER INSERT/UPDATE/DELETE) fire for every row of every statement,
multi-row ``INSERT ... ON DUPLICATE KEY UPDATE`` (an insert or an update per
row) and ``REPLACE`` (a delete then an insert, also for rows evicted through
another UNIQUE index) included. They skip the writes of peersync's own apply
(``@peersync_apply`` is set on its connection only, and only while it
writes a table without triggers of the user's), which writes its tracking
itself. MariaDB does not fire triggers for rows changed by foreign key
actions (``ON DELETE CASCADE``): ``cascades.py`` tracks those.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from peersync._adapters.sql import meta as _meta
from peersync._adapters.sql.tracked import ScopeBase, TrackedNames, user_table
from peersync._engine.errors import TableError
from peersync._engine.model import TableSchema
from peersync._engine.types import MARIADB_COLUMN_TYPES, MARIADB_TYPES, Column, ValueType, column, parse_declared

from .conn import Conn, q

PREFIX = _meta.PREFIX
LOG = PREFIX + "log"
CLOCK = PREFIX + "clock"
PENDING = _meta.PENDING
NOW_MS = "CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)"
APPLYING = "@peersync_apply"
# The user table's alias where it is locked (LOCK TABLES names aliases): a user
# table cannot have it as its name (the prefix is reserved).
USER_ALIAS = PREFIX + "u"

_NAME = "VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
_ENGINE = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
META_DDL = (
    f"CREATE TABLE IF NOT EXISTS {CLOCK} (id INT PRIMARY KEY, seq BIGINT NOT NULL DEFAULT 0,"
    f" partial_seq BIGINT NOT NULL DEFAULT 0) {_ENGINE}",
    f"INSERT IGNORE INTO {CLOCK} (id) VALUES (0)",
    f"CREATE TABLE IF NOT EXISTS {LOG} (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, seq BIGINT NULL,"
    f" tbl INT NOT NULL, UNIQUE KEY (seq)) {_ENGINE}",
    f"CREATE TABLE IF NOT EXISTS {PREFIX}partial (id BIGINT PRIMARY KEY, scope {_NAME} NOT NULL,"
    f" knowledge LONGBLOB NOT NULL) {_ENGINE}",
    f"CREATE TABLE IF NOT EXISTS {PREFIX}replicas (idx INT NOT NULL AUTO_INCREMENT PRIMARY KEY,"
    f" replica_id VARBINARY(16) NOT NULL UNIQUE) {_ENGINE}",
    f"CREATE TABLE IF NOT EXISTS {PREFIX}scopes (name {_NAME} PRIMARY KEY, idx INT NOT NULL UNIQUE,"
    " replica_id VARBINARY(16) NOT NULL UNIQUE, tables LONGTEXT NOT NULL, fingerprint VARCHAR(128) NOT NULL,"
    " knowledge LONGBLOB NOT NULL, forgotten LONGBLOB NOT NULL, created_at BIGINT NOT NULL) " + _ENGINE,
    f"CREATE TABLE IF NOT EXISTS {PREFIX}tracked (tbl {_NAME} PRIMARY KEY, definition LONGTEXT NOT NULL,"
    f" id INT NOT NULL UNIQUE) {_ENGINE}",
    f"CREATE TABLE IF NOT EXISTS {PREFIX}applied (scope {_NAME} NOT NULL, lo BIGINT NOT NULL, hi BIGINT NOT NULL,"
    f" made_with LONGBLOB NOT NULL, PRIMARY KEY (scope, lo)) {_ENGINE}",
    f"CREATE TABLE IF NOT EXISTS {PENDING} (scope INT NOT NULL, tbl INT NOT NULL, vrep INT NOT NULL,"
    " vtick BIGINT NOT NULL, srep INT NOT NULL, stick BIGINT NOT NULL, kj LONGTEXT NOT NULL,"
    f" UNIQUE KEY (scope, srep, stick)) {_ENGINE}",
    f"CREATE TABLE IF NOT EXISTS {PREFIX}conflicts (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,"
    f" scope {_NAME} NOT NULL, tbl {_NAME} NOT NULL, `key` LONGTEXT NOT NULL, type VARCHAR(32) NOT NULL,"
    " policy VARCHAR(255) NOT NULL, outcome VARCHAR(32) NOT NULL, local_version VARCHAR(128),"
    " remote_version VARCHAR(128) NOT NULL, local_row LONGTEXT, remote_row LONGTEXT, local_time BIGINT,"
    " remote_time BIGINT NOT NULL, detail LONGTEXT NOT NULL, logged_at BIGINT NOT NULL,"
    f" KEY (scope, tbl)) {_ENGINE}",
    f"CREATE TABLE IF NOT EXISTS {PREFIX}sessions (scope {_NAME} NOT NULL, id VARCHAR(255) NOT NULL,"
    f" seq BIGINT NOT NULL, PRIMARY KEY (scope, id)) {_ENGINE}",
)
META_TABLES = (
    "clock",
    "log",
    "partial",
    "replicas",
    "scopes",
    "tracked",
    "applied",
    "pending",
    "conflicts",
    "sessions",
    "names",
    "finals",
)


# A change on a live row keeps its creation; a change on a tombstone starts a new incarnation.
KEEP_CREATION = (
    "crep = CASE WHEN del = 1 THEN NULL WHEN ctick IS NULL AND cid IS NULL AND utick IS NOT NULL"
    " THEN urep ELSE crep END,"
    " ctick = CASE WHEN del = 1 THEN NULL WHEN ctick IS NULL AND cid IS NULL AND utick IS NOT NULL"
    " THEN utick ELSE ctick END,"
    " cid = CASE WHEN del = 1 THEN NULL WHEN ctick IS NULL AND cid IS NULL THEN lt ELSE cid END"
)
FRESH_CREATION = "crep = NULL, ctick = NULL, cid = NULL"


def column_type(name: str, data_type: str, column_type: str, *, nullable: bool, check: str | None) -> Column:
    """A MariaDB column in the engine's vocabulary (``MARIADB_TYPES``), by
    ``information_schema.columns``: ``tinyint(1)`` is boolean, a LONGTEXT
    with a ``json_valid`` CHECK is MariaDB's JSON. Raises
    :class:`~peersync.TableError` for a type that cannot be synced yet."""
    full = column_type.lower()
    vtype = MARIADB_COLUMN_TYPES.get(full.replace(" unsigned", ""))
    if vtype is None:
        vtype = MARIADB_TYPES.get(data_type.lower())
    if vtype is ValueType.TEXT and check and "json_valid" in check.lower():
        vtype = ValueType.JSON
    if vtype is None:
        raise TableError(f"column {name} has type {column_type}, which peersync cannot sync yet")
    _, params = parse_declared(column_type)
    if data_type.lower() in ("char", "varchar", "binary", "varbinary", "decimal", "time", "datetime", "timestamp"):
        return column(name, vtype, params, nullable=nullable, declared=column_type)
    return column(name, vtype, (), nullable=nullable, declared=column_type)


@dataclass(frozen=True)
class Tracked(TrackedNames):
    """A user table with its tracking table and the SQL peersync runs on it."""

    schema: TableSchema
    key_decl: tuple[str, ...]  # each key column's type with its collation, for the tracking table
    depends_on: tuple[str, ...]  # tables this one references
    tid: int = 0

    @property
    def specs(self) -> tuple[Column, ...]:
        return self.schema.specs

    def create_sql(self) -> list[str]:
        keys = ", ".join(f"{k} {d} NOT NULL" for k, d in zip(self.kcols, self.key_decl, strict=True))
        return [
            f"CREATE TABLE {q(self.tracking)} ({keys}, lt BIGINT NOT NULL, urep INT NULL, utick BIGINT NULL,"
            " crep INT NULL, ctick BIGINT NULL, cid BIGINT NULL, ctime BIGINT NOT NULL,"
            " del TINYINT NOT NULL DEFAULT 0, scope INT NULL, mw BIGINT NULL,"
            f" PRIMARY KEY ({', '.join(self.kcols)}), KEY (lt), KEY (cid)) {_ENGINE}",
        ]

    def trigger_names(self) -> list[str]:
        return [f"{PREFIX}{op}_{self.name}"[:64] for op in ("ins", "upd", "del")]

    def stamp(self, key: str, deleted: int, creation: str) -> str:
        """The statements that record a change of the row whose key values
        are the SQL expressions ``key`` (comma-separated, in key order): a
        new log entry, and the tracking row pointed at it. ``creation`` is
        :data:`KEEP_CREATION` (a change of the same incarnation) or
        :data:`FRESH_CREATION` (a new one)."""
        return (
            f"INSERT INTO {LOG} (tbl) VALUES ({self.tid});"
            f" INSERT INTO {q(self.tracking)} ({', '.join(self.kcols)}, lt, ctime, del)"
            f" VALUES ({key}, LAST_INSERT_ID(), {NOW_MS}, {deleted})"
            f" ON DUPLICATE KEY UPDATE {creation}, lt = VALUES(lt), urep = NULL, utick = NULL,"
            f" ctime = GREATEST(VALUES(ctime), ctime + 1), del = {deleted}, scope = NULL;"
        )

    def trigger_sql(self) -> list[str]:
        """The three triggers. A change on a live row keeps its creation (a
        local creation is the log id ``cid``, resolved to its sealed tick when
        the row is sent); a change on a tombstone starts a new incarnation.
        MySQL evaluates ``SET`` assignments left to right, each seeing the
        ones before it: the creation columns are set before the version's."""
        s, tbl = self.schema, q(self.name)
        ins, upd, dele = (q(n) for n in self.trigger_names())
        keep, fresh = KEEP_CREATION, FRESH_CREATION

        def vals(row: str) -> str:
            return ", ".join(f"{row}.{q(c)}" for c in s.key)

        def stamp(row: str, deleted: int, creation: str) -> str:
            return self.stamp(vals(row), deleted, creation)

        def same(a: str, b: str) -> str:
            parts = []
            for c, spec in zip(s.columns, s.specs, strict=True):
                # BINARY: a case-only edit under a case-insensitive collation is a change.
                cast = spec.type in (ValueType.TEXT, ValueType.JSON, ValueType.UUID)
                x, y = (f"BINARY {a}.{q(c)}", f"BINARY {b}.{q(c)}") if cast else (f"{a}.{q(c)}", f"{b}.{q(c)}")
                parts.append(f"{x} <=> {y}")
            return " AND ".join(parts)

        key_same = " AND ".join(f"BINARY OLD.{q(k)} <=> BINARY NEW.{q(k)}" for k in s.key)
        guard = f"IF {APPLYING} IS NULL THEN"
        return [
            f"CREATE TRIGGER {ins} AFTER INSERT ON {tbl} FOR EACH ROW BEGIN {guard}"
            f" {stamp('NEW', 0, fresh)} END IF; END",
            f"CREATE TRIGGER {upd} AFTER UPDATE ON {tbl} FOR EACH ROW BEGIN {guard}"
            f" IF NOT ({same('OLD', 'NEW')}) THEN"
            f" IF NOT ({key_same}) THEN {stamp('OLD', 1, keep)} {stamp('NEW', 0, fresh)}"
            f" ELSE {stamp('NEW', 0, keep)} END IF; END IF; END IF; END",
            f"CREATE TRIGGER {dele} AFTER DELETE ON {tbl} FOR EACH ROW BEGIN {guard}"
            f" {stamp('OLD', 1, keep)} END IF; END",
        ]

    def backfill_sql(self) -> list[str]:
        """Track the rows that exist at provisioning: one log entry each
        (``:top`` is the log's last id before), then their tracking rows."""
        u = USER_ALIAS
        keys = ", ".join(f"{u}.{q(k)}" for k in self.schema.key)
        named = ", ".join(f"{u}.{q(c)} AS {k}" for c, k in zip(self.schema.key, self.kcols, strict=True))
        kc = ", ".join(self.kcols)
        # The n-th log entry after :top and the n-th key in key order pair up.
        return [
            f"INSERT INTO {LOG} (tbl) SELECT {self.tid} FROM {q(self.name)}",
            f"INSERT INTO {q(self.tracking)} ({kc}, lt, ctime, del)"
            f" SELECT {', '.join('k.' + k for k in self.kcols)}, l.id, {NOW_MS}, 0 FROM"
            f" (SELECT {named}, ROW_NUMBER() OVER (ORDER BY {keys}) AS n FROM {q(self.name)} AS {u}) AS k"
            f" JOIN (SELECT id, ROW_NUMBER() OVER (ORDER BY id) AS n FROM {LOG}"
            f" WHERE id > %(top)s AND tbl = {self.tid}) AS l ON l.n = k.n",
        ]

    def drop_sql(self) -> list[str]:
        return [
            *(f"DROP TRIGGER IF EXISTS {q(n)}" for n in self.trigger_names()),
            f"DROP TABLE IF EXISTS {q(self.tracking)}",
        ]

    def read(self, column: str, alias: str = "") -> str:
        """A user column as peersync reads it: a ``FLOAT`` widened to
        ``DOUBLE`` in SQL, exactly (the driver would get six digits of it)."""
        ref = f"{alias}.{q(column)}" if alias else q(column)
        spec = self.schema.specs[self.schema.columns.index(column)]
        return f"CAST({ref} AS DOUBLE)" if is_float(spec) else ref

    @cached_property
    def key_where(self) -> str:
        return " AND ".join(f"{q(k)} = %s" for k in self.schema.key)

    @cached_property
    def select_row_sql(self) -> str:
        # A locking read: under REPEATABLE READ a plain SELECT reads the
        # snapshot taken before the apply waited for a local writer's lock,
        # so a conflict would be judged (and a merge built) on a stale row.
        return (
            f"SELECT {', '.join(self.read(c) for c in self.schema.columns)} FROM {q(self.name)}"
            f" WHERE {self.key_where} FOR UPDATE"
        )

    @cached_property
    def delete_sql(self) -> str:
        return f"DELETE FROM {q(self.name)} WHERE {self.key_where}"

    @cached_property
    def insert_sql(self) -> str:
        cols = self.schema.columns
        return f"INSERT INTO {q(self.name)} ({', '.join(q(c) for c in cols)}) VALUES ({', '.join(['%s'] * len(cols))})"

    @cached_property
    def update_sql(self) -> str:
        """Update a row by its key: never ``ON DUPLICATE KEY UPDATE``, which
        fires on any UNIQUE index and would overwrite another row."""
        others = [c for c in self.schema.columns if c not in self.schema.key]
        sets = ", ".join(f"{q(c)} = %s" for c in others)
        return f"UPDATE {q(self.name)} SET {sets} WHERE {self.key_where}" if others else ""


def is_float(spec: Column) -> bool:
    """A single-precision ``FLOAT`` column (a ``FLOAT(p)`` with p above 24 is a ``DOUBLE``)."""
    return spec.type is ValueType.REAL and (spec.declared or "").lower().startswith("float")


def key_declaration(column_type: str, collation: str | None) -> str:
    return column_type + (f" COLLATE {collation}" if collation else "")


def introspect(conn: Conn, table: str) -> Tracked:
    """Read a user table's shape; raise :class:`~peersync.TableError` if it cannot be tracked."""
    row = conn.execute(
        "SELECT table_name, table_type, engine FROM information_schema.tables"
        " WHERE table_schema = DATABASE() AND table_name = %s",
        (table,),
    ).fetchone()
    name, _, engine = user_table(row, table, ("BASE TABLE",))
    if (engine or "").lower() != "innodb":
        raise TableError(f"table {name} uses the {engine} engine; peersync needs InnoDB (transactions)")
    # Two plain queries: a correlated subquery on check_constraints per column
    # reads every schema's constraints each time (a hundred times slower).
    checks: dict[str, str] = {}
    for cname, clause in conn.execute(
        "SELECT constraint_name, check_clause FROM information_schema.check_constraints"
        " WHERE constraint_schema = DATABASE() AND table_name = %s",
        (name,),
    ).fetchall():
        checks.setdefault(cname, clause)
    cols = [
        (*r, checks.get(r[0]))
        for r in conn.execute(
            "SELECT column_name, data_type, column_type, is_nullable, collation_name, column_key"
            " FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = %s"
            " ORDER BY ordinal_position",
            (name,),
        ).fetchall()
    ]
    key = tuple(
        r[0]
        for r in conn.execute(
            "SELECT column_name FROM information_schema.key_column_usage WHERE table_schema = DATABASE()"
            " AND table_name = %s AND constraint_name = 'PRIMARY' ORDER BY ordinal_position",
            (name,),
        ).fetchall()
    )
    if not key:
        raise TableError(f"table {name} has no primary key; peersync needs one to identify rows")
    specs = tuple(
        column_type(c, dt, ct, nullable=nullable == "YES" and c not in key, check=chk)
        for c, dt, ct, nullable, _, _, chk in cols
    )
    by_name = {r[0]: r for r in cols}
    key_decl = tuple(key_declaration(by_name[k][2], by_name[k][4]) for k in key)
    columns = tuple(r[0] for r in cols)
    types = tuple(spec.type.value for spec in specs)
    deps = tuple(
        sorted(
            {
                r[0]
                for r in conn.execute(
                    "SELECT DISTINCT referenced_table_name FROM information_schema.referential_constraints"
                    " WHERE constraint_schema = DATABASE() AND table_name = %s AND referenced_table_name != %s",
                    (name, name),
                ).fetchall()
            }
        )
    )
    return Tracked(TableSchema(name, columns, key, types, specs), key_decl, deps)


def user_triggers(conn: Conn) -> set[str]:
    """The tables that have triggers of the user's: a write to one may change other rows."""
    return {
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT event_object_table FROM information_schema.triggers"
            " WHERE trigger_schema = DATABASE() AND trigger_name NOT LIKE %s",
            (PREFIX.replace("_", "\\_") + "%",),
        ).fetchall()
    }


def trigger_faults(conn: Conn, tables: list[Tracked]) -> dict[str, str]:
    """Tables missing one of their peersync triggers (``"lost"``)."""
    have = {
        (r[0], r[1])
        for r in conn.execute(
            "SELECT trigger_name, event_object_table FROM information_schema.triggers"
            " WHERE trigger_schema = DATABASE() AND trigger_name LIKE %s",
            (PREFIX.replace("_", "\\_") + "%",),
        ).fetchall()
    }
    return {t.name: "lost" for t in tables if any((n, t.name) not in have for n in t.trigger_names())}


def emptied(conn: Conn, tables: list[Tracked]) -> list[str]:
    """Tables whose rows vanished without their triggers: ``TRUNCATE TABLE``
    fires none on MariaDB. The probe: the live tracking rows with the lowest
    and the highest key must have their row (a tracked delete turns its
    tracking row into a tombstone in the same transaction, so in one snapshot
    they agree). Two index lookups per table, no privilege needed, and a
    rebuild (``OPTIMIZE``, ``ALTER ... FORCE``) keeps the rows, so it is never
    mistaken for a loss. Not seen: a ``TRUNCATE`` followed by inserts of both
    of those keys again (``repair`` looks at every row)."""
    out = []
    for t in tables:
        keys = ", ".join(t.kcols)
        on = " AND ".join(f"u.{q(c)} = k.{kc}" for c, kc in zip(t.schema.key, t.kcols, strict=True))
        ends = " UNION ALL ".join(
            f"(SELECT {keys} FROM {q(t.tracking)} WHERE del = 0 ORDER BY {', '.join(k + d for k in t.kcols)} LIMIT 1)"
            for d in ("", " DESC")
        )
        hit = conn.execute(
            f"SELECT 1 FROM ({ends}) AS k LEFT JOIN {q(t.name)} AS u ON {on}"
            f" WHERE u.{q(t.schema.key[0])} IS NULL LIMIT 1"
        ).fetchone()
        if hit:
            out.append(t.name)
    return out


class Scope(ScopeBase[Tracked]):
    """A provisioned scope as this connection last read it."""


# How long a log id must have been allocated before the seal's scan may start
# above it: the time an insert may take between taking its id and writing its
# row (microseconds; no lock is ever waited for in between), with a wide margin.
MARK_AGE_MS = 60_000
# The seal's mark (``seal``), as SQL: the clock's row 1, 0 before the first step.
MARK = f"COALESCE((SELECT seq FROM {CLOCK} WHERE id = 1), 0)"


def seal(conn: Conn) -> int:
    """Give every committed, unsealed change its tick (see the module
    docstring); returns the newest sealed tick. Runs in its own transaction.

    The scan for unsealed entries starts above a *mark* (``_peersync_clock``
    row 1): every entry with an id at or below it is sealed. It cannot be a
    scan of ``seq IS NULL`` alone: sealing moves an entry out of that part of
    the ``seq`` index, and InnoDB leaves the old index entry behind until
    purge removes it, which a read view open anywhere on the server (a long
    report, a dump) holds off; such a scan then walks every entry sealed
    since, a million after an initial sync. The mark moves in steps, to a
    *candidate* (row 2: the highest id seen ``MARK_AGE_MS`` before, and when):
    every id at or below it was taken that long ago, so its row is written
    (an insert takes its id, then writes the row, with no wait in between).
    It never passes the lowest unsealed entry, uncommitted ones included (a
    dirty read finds those: an open transaction's entries are sealed when it
    commits, however late)."""
    due, low = False, None
    if not conn.in_txn:  # a dirty read needs its own transaction
        with conn.txn(isolation="READ UNCOMMITTED"):
            mark, _, since, now, high = conn.execute(_STATE).fetchone()
            due = since is None or now - since >= MARK_AGE_MS
            if due:  # the mark may move: find the lowest unsealed entry, committed or not
                (low,) = conn.execute(f"SELECT MIN(id) {_unsealed(mark, high)}", (mark,)).fetchone()
    with conn.txn(isolation="READ COMMITTED"):
        (top,) = conn.execute(f"SELECT seq FROM {CLOCK} WHERE id = 0 FOR UPDATE").fetchone()
        mark, cand, since, now, high = conn.execute(_STATE).fetchone()
        ids = [
            r[0] for r in conn.execute(f"SELECT id {_unsealed(mark, high)} ORDER BY id FOR UPDATE SKIP LOCKED", (mark,))
        ]
        if ids:
            _number(conn, ids, top)
            top += len(ids)
            conn.execute(f"UPDATE {CLOCK} SET seq = %s WHERE id = 0", (top,))
        if since is None or (due and now - since >= MARK_AGE_MS):
            _move_mark(conn, int(mark), int(cand or 0) if since is not None else 0, low, int(high), int(now))
    return int(top)


# The mark, the candidate, when it was taken (None before the first), the time now, the highest log id.
_STATE = (
    f"SELECT {MARK}, (SELECT seq FROM {CLOCK} WHERE id = 2), (SELECT partial_seq FROM {CLOCK} WHERE id = 2),"
    f" {NOW_MS}, (SELECT COALESCE(MAX(id), 0) FROM {LOG})"
)
# Above this many ids over the mark (a large batch written in the last minute or
# two), the unsealed entries are found through the seq index instead of read by
# id; below it, reading them costs at most some 0.1 s (a busy server's two minutes).
_BY_ID = 100_000


def _unsealed(mark: int, high: int) -> str:
    """``FROM ... WHERE`` of the unsealed entries above the mark (``%s``): every
    entry above it read by id, past purge's leftovers in the ``seq`` index,
    unless there are many (then the index: cheap while purge keeps up)."""
    index = "PRIMARY" if high - mark <= _BY_ID else "seq"
    return f"FROM {LOG} FORCE INDEX ({index}) WHERE id > %s AND seq IS NULL"


def _move_mark(conn: Conn, mark: int, cand: int, low: int | None, high: int, now: int) -> None:
    """Move the mark to the candidate ``cand`` (0: none), or below the lowest
    unsealed entry ``low``; the highest id now, ``high``, becomes the next
    candidate, taken at ``now`` (none while the log has no entry above the
    mark: a database with an empty log keeps no row of it)."""
    to = min(cand, low - 1) if low is not None else cand
    if to > mark:
        conn.execute(f"INSERT INTO {CLOCK} (id, seq) VALUES (1, %s) ON DUPLICATE KEY UPDATE seq = VALUES(seq)", (to,))
    if high <= max(to, mark):
        return
    conn.execute(
        f"INSERT INTO {CLOCK} (id, seq, partial_seq) VALUES (2, %s, %s)"
        " ON DUPLICATE KEY UPDATE seq = VALUES(seq), partial_seq = VALUES(partial_seq)",
        (high, now),
    )


def _number(conn: Conn, ids: list[int], top: int) -> None:
    """Give the entries ``ids`` (ascending, locked by the caller) the ticks
    after ``top``, in id order: one ``UPDATE`` per run of consecutive ids
    (an apply's entries are consecutive), through a temporary table when
    the runs are many (CREATE and DROP TEMPORARY TABLE do not commit)."""
    runs = [0] + [i for i in range(1, len(ids)) if ids[i] != ids[i - 1] + 1]
    if len(runs) <= _RUNS:
        for i, start in enumerate(runs):
            end = runs[i + 1] if i + 1 < len(runs) else len(ids)
            conn.execute(
                f"UPDATE {LOG} SET seq = id + %s WHERE id BETWEEN %s AND %s",
                (top + start + 1 - ids[start], ids[start], ids[end - 1]),
            )
        return
    conn.execute(f"DROP TEMPORARY TABLE IF EXISTS {PREFIX}seal")
    conn.execute(f"CREATE TEMPORARY TABLE {PREFIX}seal (n BIGINT AUTO_INCREMENT PRIMARY KEY, id BIGINT)")
    conn.executemany(f"INSERT INTO {PREFIX}seal (id) VALUES (%s)", [(x,) for x in ids])
    conn.execute(f"UPDATE {LOG} AS l JOIN {PREFIX}seal AS s ON s.id = l.id SET l.seq = %s + s.n", (top,))


_RUNS = 20  # runs of consecutive ids numbered by ranges; more go through a temporary table


def sealed(conn: Conn) -> int:
    """The newest sealed tick, as the open transaction sees it."""
    (top,) = conn.execute(f"SELECT seq FROM {CLOCK} WHERE id = 0").fetchone()
    return int(top)
