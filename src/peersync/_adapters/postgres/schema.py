"""PostgreSQL objects peersync creates, and how it reads a user table's shape.

Everything peersync owns lives in one schema, ``_peersync``, so a user's own
schemas stay as they were; its connection puts that schema first on its
``search_path`` (the shared metadata statements name tables unqualified),
while trigger bodies name every object schema-qualified, because they run
with the search path of whichever program writes.

Metadata tables (the same as SQLite's, read and written by
:class:`~peersync._adapters.sql.meta.Meta`): replicas, scopes, tracked
tables, partial knowledge, applied blocks (never written here, see
``peer.py``), pending changes, the conflict log and finished sessions.

Per tracked table, ``_peersync._peersync_t_<id>``: the key (``k0, k1, ...``,
of the user columns' own types), the local tick ``lt`` of the last change
here (indexed), the origin version ``urep/utick`` and ``scope`` when that
change arrived through a scope (NULL for a local change), the creation
version ``crep/ctick`` (NULL when equal to the update version), the change
time in ms, the tombstone flag and ``mw`` (the partial knowledge record of
an unfinished session the row came in). Statement-level triggers with
transition tables stamp every INSERT, UPDATE, DELETE, ``COPY`` and
``TRUNCATE`` of any program, set-based: a bulk statement costs one
statement of tracking, not one per row.

Ticks and the snapshot bound: see :func:`bound_sql` and ``TAKE_TICKS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from peersync._adapters.sql.meta import PREFIX
from peersync._adapters.sql.tracked import ScopeBase
from peersync._engine.errors import TableError
from peersync._engine.model import TableSchema
from peersync._engine.types import POSTGRES_TYPES, Column, ValueType, column, parse_declared

SCHEMA = "_peersync"
TICK = f"{SCHEMA}.{PREFIX}tick"
# Lock keys are ticks plus this mark, so another program's advisory locks
# (small keys, as a rule) are not mistaken for peersync's. Ticks stay below
# 2**62 (the engine's MAX_TICK), so a key fits in a bigint.
LOCK_MARK = 2**62
# A change's time: the clock, unless the writing transaction sets
# ``peersync.clock_ms`` (tests fix writers' clocks with it, as the SQLite
# tests override julianday('now') on a writer's connection).
NOW_MS = (
    "COALESCE(NULLIF(current_setting('peersync.clock_ms', true), '')::bigint,"
    " (extract(epoch FROM clock_timestamp()) * 1000)::bigint)"
)
# The sequence's last tick handed out (last_value before the first nextval is not one).
LAST_TICK = f"(SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM {TICK})"

# Every transaction that stamps a tracked change first takes, once, a shared
# advisory lock whose key is the newest tick handed out so far; all the ticks
# it takes afterwards are above that key. While it runs, the lock publishes a
# lower bound of its ticks in pg_locks (advisory locks are visible to every
# session, unlike the rows the transaction wrote); when it ends, PostgreSQL
# makes its rows visible before it releases its locks. This is PostgreSQL's
# equivalent of SQL Server's min_active_rowversion(): see bound_sql. The
# lock is shared, so writers never wait for each other on it; the marker
# (a transaction-local setting holding the transaction id) keeps it to one
# lock per transaction however many statements it runs.
TAKE_TICKS = f"""
CREATE OR REPLACE FUNCTION {SCHEMA}.{PREFIX}take_ticks() RETURNS void LANGUAGE plpgsql AS $f$
DECLARE x text := pg_current_xact_id()::text;
BEGIN
  IF current_setting('peersync.xact', true) IS DISTINCT FROM x THEN
    PERFORM pg_advisory_xact_lock_shared({LAST_TICK} + {LOCK_MARK});
    PERFORM set_config('peersync.xact', x, true);
  END IF;
END $f$"""


def bound_sql() -> tuple[str, str]:
    """The two statements, run in this order and outside any snapshot they
    must be ahead of, that give the snapshot bound: the newest tick handed
    out ``L``, then the smallest lock key of transactions still running
    ``m`` (NULL when none). The bound is ``min(L, m)``.

    Why it is exact: a transaction's ticks all exceed its lock key, and it
    holds the lock from before its first tick until after its rows are
    visible. A tick ``t <= L`` was handed out before ``L`` was read, so its
    transaction held its lock then; if it is still running when pg_locks is
    read, ``m`` is at most its key, below ``t``; if it is not, its rows are
    visible to any snapshot taken afterwards (rolled back rows are simply
    gone). So every change with a tick at or below the bound is committed
    and visible to a snapshot taken after these two statements.
    """
    locks = (
        "SELECT min(((l.classid::bigint << 32) | l.objid::bigint) - %s) FROM pg_locks AS l"
        " WHERE l.locktype = 'advisory' AND l.objsubid = 1"
        " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND ((l.classid::bigint << 32) | l.objid::bigint) >= %s"
    )
    return f"SELECT {LAST_TICK}", locks % (LOCK_MARK, LOCK_MARK)


META_DDL = (
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"CREATE SEQUENCE IF NOT EXISTS {TICK} MAXVALUE {2**62 - 1}",
    TAKE_TICKS,
    f"CREATE TABLE IF NOT EXISTS {SCHEMA}.{PREFIX}clock (id integer PRIMARY KEY CHECK (id = 0), floor bigint,"
    " partial_seq bigint NOT NULL DEFAULT 0)",
    f"INSERT INTO {SCHEMA}.{PREFIX}clock (id) VALUES (0) ON CONFLICT DO NOTHING",
    f"CREATE TABLE IF NOT EXISTS {SCHEMA}.{PREFIX}partial (id bigint PRIMARY KEY, scope text NOT NULL,"
    " knowledge bytea NOT NULL)",
    f"CREATE TABLE IF NOT EXISTS {SCHEMA}.{PREFIX}replicas (idx serial PRIMARY KEY, replica_id bytea NOT NULL UNIQUE)",
    f"CREATE TABLE IF NOT EXISTS {SCHEMA}.{PREFIX}scopes (name text PRIMARY KEY, idx integer NOT NULL UNIQUE,"
    " replica_id bytea NOT NULL UNIQUE, tables text NOT NULL, fingerprint text NOT NULL,"
    " knowledge bytea NOT NULL, forgotten bytea NOT NULL, created_at bigint NOT NULL)",
    f"CREATE TABLE IF NOT EXISTS {SCHEMA}.{PREFIX}tracked (tbl text PRIMARY KEY, definition text NOT NULL,"
    " id integer NOT NULL UNIQUE)",
    f"CREATE TABLE IF NOT EXISTS {SCHEMA}.{PREFIX}applied (scope text NOT NULL, lo bigint NOT NULL,"
    " hi bigint NOT NULL, made_with bytea NOT NULL, PRIMARY KEY (scope, lo))",
    # Keys of any type: stored as their canonical text (a JSON list), the way
    # the conflict log stores them.
    f"CREATE TABLE IF NOT EXISTS {SCHEMA}.{PREFIX}pending (scope integer NOT NULL, tbl integer NOT NULL,"
    " vrep integer NOT NULL, vtick bigint NOT NULL, srep integer NOT NULL, stick bigint NOT NULL,"
    " key text NOT NULL, UNIQUE (scope, srep, stick))",
    f"CREATE TABLE IF NOT EXISTS {SCHEMA}.{PREFIX}conflicts (id bigserial PRIMARY KEY, scope text NOT NULL,"
    " tbl text NOT NULL, key text NOT NULL, type text NOT NULL, policy text NOT NULL, outcome text NOT NULL,"
    " local_version text, remote_version text NOT NULL, local_row text, remote_row text,"
    " local_time bigint, remote_time bigint NOT NULL, detail text NOT NULL, logged_at bigint NOT NULL)",
    f"CREATE INDEX IF NOT EXISTS {PREFIX}conflicts_row ON {SCHEMA}.{PREFIX}conflicts (scope, tbl, key)",
    f"CREATE TABLE IF NOT EXISTS {SCHEMA}.{PREFIX}sessions (scope text NOT NULL, id text NOT NULL,"
    " seq bigint NOT NULL, PRIMARY KEY (scope, id))",
)

# The names a trigger body uses beside the user's columns (transition tables,
# their aliases, the change time variable): all carry the reserved prefix, so
# a user column may have any other name (a column ``n`` or ``now_ms`` made
# the trigger's query ambiguous and broke the application's writes).
T_NEW, T_OLD, A_NEW, A_OLD, A_GONE, V_NOW = (f"{PREFIX}{x}" for x in ("new_rows", "old_rows", "n", "o", "g", "now_ms"))
TRACKING_COLUMNS = ("lt", "urep", "utick", "crep", "ctick", "ctime", "del", "scope", "mw")
# A change to a live row keeps its incarnation's creation version; a change on
# top of a tombstone starts a new one (the columns are those of alias t).
KEEP_CREATION = (
    "crep = CASE WHEN t.del THEN NULL WHEN t.ctick IS NULL THEN t.urep ELSE t.crep END,"
    " ctick = CASE WHEN t.del THEN NULL WHEN t.ctick IS NULL THEN COALESCE(t.utick, t.lt) ELSE t.ctick END"
)


def q(name: str) -> str:
    """Quote an SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class PgColumn:
    """A user column: its canonical description, its PostgreSQL type name
    (``pg_type.typname`` of the base type) and the type to cast incoming
    values to (without size: a size is enforced by the assignment, which
    refuses a value too long instead of cutting it as an explicit cast would)."""

    spec: Column
    typname: str
    cast: str
    is_enum: bool = False


@dataclass(frozen=True)
class Tracked:
    """A user table with its tracking table. ``name`` is the scope's (global)
    name of the table, its bare name; ``qualified`` the table here."""

    schema: TableSchema
    qualified: str
    columns: tuple[PgColumn, ...]
    key_types: tuple[str, ...]  # format_type() of each key column, with size
    depends_on: tuple[str, ...]
    tid: int = 0
    uniques: tuple[tuple[str, ...], ...] = ()
    # Can something other than the statement change this table's rows while
    # a batch is written (a user's trigger on it, a cascading foreign key
    # from it)? Only then does an apply look for rows changed behind its back.
    side_effects: bool = True

    @property
    def name(self) -> str:
        return self.schema.name

    @property
    def tracking(self) -> str:
        return f"{SCHEMA}.{PREFIX}t_{self.tid}"

    @property
    def kcols(self) -> list[str]:
        return [f"k{i}" for i in range(len(self.schema.key))]

    def key_match(self, trk: str, user: str) -> str:
        return " AND ".join(f"{trk}.{k} = {user}.{q(c)}" for k, c in zip(self.kcols, self.schema.key, strict=True))

    def create_sql(self) -> list[str]:
        """The tracking table, its tick index, and the trigger functions and triggers."""
        kdefs = ", ".join(f"{k} {ty}" for k, ty in zip(self.kcols, self.key_types, strict=True))
        kc = ", ".join(self.kcols)
        trk = self.tracking
        tid = self.tid
        out = [
            f"CREATE TABLE {trk} ({kdefs}, lt bigint NOT NULL, urep integer, utick bigint, crep integer,"
            f" ctick bigint, ctime bigint NOT NULL, del boolean NOT NULL, scope integer, mw bigint,"
            f" PRIMARY KEY ({kc}))",
            f"CREATE INDEX {PREFIX}t_{tid}_lt ON {trk} (lt)",
        ]
        newk = ", ".join(f"{A_NEW}.{q(c)}" for c in self.schema.key)
        oldk = ", ".join(f"{A_OLD}.{q(c)}" for c in self.schema.key)
        keys = ", ".join(q(c) for c in self.schema.key)
        tick = f"nextval('{TICK}')"
        local = "urep = NULL, utick = NULL, scope = NULL, mw = NULL"
        upsert_live = (
            f" ON CONFLICT ({kc}) DO UPDATE SET lt = excluded.lt, {local}, {KEEP_CREATION},"
            " ctime = greatest(excluded.ctime, t.ctime + 1), del = false"
        )
        upsert_dead = (
            f" ON CONFLICT ({kc}) DO UPDATE SET lt = excluded.lt, {local}, {KEEP_CREATION},"
            " ctime = greatest(excluded.ctime, t.ctime + 1), del = true"
        )
        same_key = " AND ".join(f"{A_OLD}.{q(c)} = {A_NEW}.{q(c)}" for c in self.schema.key)
        bodies = {
            "ins": f"INSERT INTO {trk} AS t ({kc}, lt, ctime, del) SELECT {newk}, {tick}, {V_NOW}, false"
            f" FROM {T_NEW} AS {A_NEW}{upsert_live};",
            # Keys that left (an UPDATE of the key) become tombstones; keys that
            # came, and rows whose values changed, become live changes. An
            # UPDATE that changes nothing is no change.
            "upd": f"INSERT INTO {trk} AS t ({kc}, lt, ctime, del) SELECT {A_GONE}.*, {tick}, {V_NOW}, true FROM"
            f" (SELECT {oldk} FROM {T_OLD} AS {A_OLD} EXCEPT SELECT {newk} FROM {T_NEW} AS {A_NEW})"
            f" AS {A_GONE}{upsert_dead};"
            f" INSERT INTO {trk} AS t ({kc}, lt, ctime, del) SELECT {newk}, {tick}, {V_NOW}, false"
            f" FROM {T_NEW} AS {A_NEW} LEFT JOIN {T_OLD} AS {A_OLD} ON {same_key}"
            # Compared by their stored bytes (record image equality): a value
            # that reads back differently is stored differently, and comparing
            # bytes costs less than printing both rows as text.
            f" WHERE {A_OLD} IS NULL OR NOT ({A_OLD} *= {A_NEW}){upsert_live};",
            "del": f"INSERT INTO {trk} AS t ({kc}, lt, ctime, del) SELECT {oldk}, {tick}, {V_NOW}, true"
            f" FROM {T_OLD} AS {A_OLD}{upsert_dead};",
            "trunc": f"UPDATE {trk} AS t SET lt = {tick}, {local}, {KEEP_CREATION},"
            f" ctime = greatest({V_NOW}, t.ctime + 1), del = true WHERE NOT t.del;",
        }
        del keys
        events = {
            "ins": f"AFTER INSERT ON {{t}} REFERENCING NEW TABLE AS {T_NEW} FOR EACH STATEMENT",
            "upd": f"AFTER UPDATE ON {{t}} REFERENCING OLD TABLE AS {T_OLD} NEW TABLE AS {T_NEW} FOR EACH STATEMENT",
            "del": f"AFTER DELETE ON {{t}} REFERENCING OLD TABLE AS {T_OLD} FOR EACH STATEMENT",
            "trunc": "AFTER TRUNCATE ON {t} FOR EACH STATEMENT",
        }
        for kind, body in bodies.items():
            fn = f"{SCHEMA}.{PREFIX}{kind}_{tid}"
            out.append(
                # No JIT: compiling a bulk statement's plan costs more than
                # running it (about 0.1 s per 100,000 rows updated).
                f"CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql SET jit = off AS $f$"
                f" DECLARE {V_NOW} bigint := {NOW_MS};"
                # The apply's own writes to a table without side effects stamp
                # their rows themselves (see apply.py): the trigger steps aside.
                f" BEGIN IF current_setting('peersync.applying', true) = '{tid}' THEN RETURN NULL; END IF;"
                f" PERFORM {SCHEMA}.{PREFIX}take_ticks(); {body} RETURN NULL; END $f$"
            )
            out.append(
                f"CREATE TRIGGER {PREFIX}{kind} " + events[kind].format(t=self.qualified) + f" EXECUTE FUNCTION {fn}()"
            )
            # A plain trigger does not fire for a writer whose
            # session_replication_role is replica (logical replication's
            # apply worker, pg_restore --disable-triggers, bulk loaders):
            # its writes would go untracked. ALWAYS fires in every role.
            out.append(f"ALTER TABLE {self.qualified} ENABLE ALWAYS TRIGGER {PREFIX}{kind}")
        return out

    def drop_sql(self) -> list[str]:
        out = [f"DROP TRIGGER IF EXISTS {PREFIX}{k} ON {self.qualified}" for k in ("ins", "upd", "del", "trunc")]
        out += [f"DROP FUNCTION IF EXISTS {SCHEMA}.{PREFIX}{k}_{self.tid}()" for k in ("ins", "upd", "del", "trunc")]
        out.append(f"DROP TABLE IF EXISTS {self.tracking}")
        return out

    def backfill_sql(self) -> str:
        """Every existing row becomes a local change (one statement)."""
        kc = ", ".join(self.kcols)
        keys = ", ".join(f"u.{q(c)}" for c in self.schema.key)
        return (
            f"INSERT INTO {self.tracking} ({kc}, lt, ctime, del)"
            f" SELECT {keys}, nextval('{TICK}'), {NOW_MS}, false FROM {self.qualified} AS u"
        )

    def trigger_names(self) -> list[str]:
        return [f"{PREFIX}{k}" for k in ("ins", "upd", "del", "trunc")]


def read_expr(col: PgColumn, ref: str) -> str:
    """SQL giving a column's value in its canonical wire form (see
    :mod:`peersync._engine.types`), with the connection's TimeZone UTC and
    DateStyle ISO: temporal values as text with exactly six fractional
    digits when not zero, booleans as 0/1, a float4 widened exactly, exact
    decimals, UUIDs, JSON and enums as text."""
    t = col.spec.type
    if t is ValueType.BOOLEAN:
        return f"{ref}::int"
    if t is ValueType.REAL:
        return f"{ref}::float8"
    if t is ValueType.TIME:
        return f"regexp_replace(to_char('2000-01-01'::date + {ref}, 'HH24:MI:SS.US'), '\\.000000$', '')"
    if t is ValueType.TIMESTAMP:
        return f"regexp_replace(to_char({ref}, 'YYYY-MM-DD HH24:MI:SS.US'), '\\.000000$', '')"
    if t is ValueType.TIMESTAMPTZ:
        return (
            f"regexp_replace(to_char({ref} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), '\\.000000$', '')"
            f" || '+00:00'"
        )
    if t in (ValueType.INTEGER, ValueType.BYTES) or (col.typname in ("text", "varchar") and not col.is_enum):
        return ref
    return f"{ref}::text"


def introspect(conn: Any, table: str) -> Tracked:
    """Read a user table's shape (``table`` as the user names it, resolved
    by the connection's search path); raise :class:`TableError` if it cannot
    be tracked.

    The name is first taken as written, as one identifier (``Order Items``,
    ``OrderItems``: an exact-case match), then as SQL parses it (``orders``,
    ``sales.orders``, ``"My Schema"."Order Items"``, unquoted parts folded to
    lower case)."""
    find = (
        "SELECT c.oid, n.nspname, c.relname, c.relkind FROM pg_class AS c JOIN pg_namespace AS n"
        " ON n.oid = c.relnamespace WHERE c.oid = to_regclass({})"
    )
    row = conn.execute(find.format("quote_ident(%s)"), (table,)).fetchone()
    if row is None:
        try:
            with conn.transaction():  # a savepoint: a name SQL cannot parse fails only this lookup
                row = conn.execute(find.format("%s"), (table,)).fetchone()
        except Exception as exc:
            # 42602 invalid name, 42601 too many dots, 0A000 another database's name
            if getattr(exc, "sqlstate", None) not in ("42602", "42601", "0A000"):
                raise
    if row is None:
        raise TableError(
            f"no such table: {table} (give a name as written, 'Order Items',"
            " or schema-qualified with SQL quoting, 'sales.\"Order Items\"')"
        )
    oid, nsp, name, kind = row
    if kind not in ("r", "p"):
        raise TableError(f"{table} is not a table")
    if nsp == SCHEMA or name.startswith(PREFIX):
        raise TableError(f"table {table}: names starting with {PREFIX} are reserved; rename the table to sync it")
    cols: list[PgColumn] = []
    ftypes: dict[str, str] = {}
    for attname, typname, declared, notnull, typtype, full in conn.execute(
        "SELECT a.attname, CASE WHEN t.typtype = 'd' THEN b.typname ELSE t.typname END,"
        " format_type(a.atttypid, a.atttypmod), a.attnotnull,"
        " CASE WHEN t.typtype = 'd' THEN b.typtype ELSE t.typtype END, format_type(a.atttypid, NULL)"
        " FROM pg_attribute AS a JOIN pg_type AS t ON t.oid = a.atttypid"
        " LEFT JOIN pg_type AS b ON b.oid = t.typbasetype"
        " WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''"
        " ORDER BY a.attnum",
        (oid,),
    ).fetchall():
        is_enum = typtype == "e"
        vtype = ValueType.TEXT if is_enum else POSTGRES_TYPES.get(typname)
        if vtype is None:
            raise TableError(f"table {table}: column {attname} has type {declared}, which peersync cannot sync yet")
        _, params = parse_declared(declared)
        spec = column(attname, vtype, params, nullable=not notnull, declared=declared)
        cast = "text" if vtype is ValueType.TEXT and not is_enum else full
        cols.append(PgColumn(spec, typname, cast, is_enum))
        ftypes[attname] = declared
    key = tuple(
        r[0]
        for r in conn.execute(
            "SELECT a.attname FROM pg_index AS i, unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)"
            " JOIN pg_attribute AS a ON a.attnum = k.attnum WHERE i.indrelid = %s AND a.attrelid = %s"
            " AND i.indisprimary ORDER BY k.ord",
            (oid, oid),
        ).fetchall()
    )
    if not key:
        raise TableError(f"table {table} has no primary key; peersync needs one to identify rows")
    deps = tuple(
        sorted(
            {
                r[0]
                for r in conn.execute(
                    "SELECT p.relname FROM pg_constraint AS f JOIN pg_class AS p ON p.oid = f.confrelid"
                    " WHERE f.conrelid = %s AND f.contype = 'f' AND f.confrelid <> f.conrelid",
                    (oid,),
                ).fetchall()
            }
        )
    )
    uniques = tuple(
        tuple(r[0])
        for r in conn.execute(
            "SELECT array_agg(a.attname ORDER BY k.ord) FROM pg_index AS i,"
            " unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) JOIN pg_attribute AS a ON a.attnum = k.attnum"
            " WHERE i.indrelid = %s AND a.attrelid = %s AND i.indisunique AND NOT i.indisprimary"
            " AND i.indexprs IS NULL GROUP BY i.indexrelid ORDER BY i.indexrelid",
            (oid, oid),
        ).fetchall()
    )
    (side_effects,) = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = %s AND NOT tgisinternal"
        " AND tgname NOT LIKE '\\_peersync\\_%%') OR EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = %s"
        " AND contype = 'f' AND (confdeltype IN ('c', 'n', 'd') OR confupdtype IN ('c', 'n', 'd')))",
        (oid, oid),
    ).fetchone()
    specs = tuple(c.spec for c in cols)
    schema = TableSchema(
        name, tuple(c.spec.name for c in cols), key, tuple(c.typname for c in cols), specs
    )  # fmt: skip
    qualified = f"{q(nsp)}.{q(name)}"
    return Tracked(schema, qualified, tuple(cols), tuple(ftypes[k] for k in key), deps, 0, uniques, bool(side_effects))


# One statement that changes whenever anything a scope's loading and trigger
# check read (``load_scope``, ``introspect``, ``PostgresPeer._verify``) can
# have changed: the scope's row (but not its knowledge, written by every
# apply), its local names, the tracked tables' ids, and for each table the
# catalog rows its shape is read from. Every change to a catalog row writes
# a new row version with the changing transaction's id as its ``xmin``
# (ALTER TABLE of a column, its type, a key, a constraint, a trigger created,
# dropped, disabled or renamed, the table or its schema renamed, a parent
# table renamed), and a table dropped and created again has a new oid. A
# change of something the shape does not depend on (a column's default,
# statistics) may change it too: that only costs a reload.
def shape_signature(names_table: bool) -> str:
    """:data:`_SIGNATURE`, reading the local names where their table exists
    (databases provisioned before names were kept have none)."""
    names = f"(SELECT names FROM {PREFIX}names WHERE scope = %(scope)s)" if names_table else "''"
    return _SIGNATURE.replace("{names}", names)


_SIGNATURE = f"""
WITH s AS (SELECT idx, replica_id, tables, fingerprint FROM {PREFIX}scopes WHERE name = %(scope)s),
r AS (SELECT ord, t, to_regclass(t) AS oid
  FROM s, json_array_elements_text(s.tables::json) WITH ORDINALITY AS j(t, ord))
SELECT md5(concat_ws('|',
  (SELECT concat_ws(':', idx, encode(replica_id, 'hex'), tables, fingerprint) FROM s),
  {{names}},
  (SELECT string_agg(tbl || ':' || id, ',' ORDER BY tbl) FROM {PREFIX}tracked),
  (SELECT string_agg(concat_ws(':', r.t, r.oid::int8,
    (SELECT c.xmin || '/' || n.xmin FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
     WHERE c.oid = r.oid),
    (SELECT string_agg(a.xmin || '/' || y.xmin, ',' ORDER BY a.attnum) FROM pg_attribute AS a
     JOIN pg_type AS y ON y.oid = a.atttypid WHERE a.attrelid = r.oid AND a.attnum > 0),
    (SELECT string_agg(i.xmin::text, ',' ORDER BY i.indexrelid) FROM pg_index AS i WHERE i.indrelid = r.oid),
    (SELECT string_agg(f.xmin || '/' || COALESCE(p.xmin::text, ''), ',' ORDER BY f.oid) FROM pg_constraint AS f
     LEFT JOIN pg_class AS p ON p.oid = f.confrelid WHERE f.conrelid = r.oid),
    (SELECT string_agg(g.xmin::text, ',' ORDER BY g.oid) FROM pg_trigger AS g WHERE g.tgrelid = r.oid)
  ), ',' ORDER BY r.ord) FROM r)))
FROM s"""


class Scope(ScopeBase[Tracked]):
    """A provisioned scope as this connection last read it."""
