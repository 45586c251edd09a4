"""The two database servers of the conformance suite, as :mod:`.pool` uses
them: create a provisioned database, read its snapshot and shape, reset it
to a snapshot by DML, drop it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import peersync
from peersync._adapters.sql.meta import now_ms

from ..helpers import drop_mariadb_database
from .pool import Rows, Server, Snapshot, scope_rows

SCOPE = "s"


class MySQLServer(Server):
    """MariaDB: ``connect(database or None)`` gives an autocommit PyMySQL
    connection; ``url(name)`` a database's peersync URL."""

    def __init__(self, connect: Callable[[str | None], Any], url: Callable[[str], str], ddl: list[str]) -> None:
        self.connect, self.url, self.ddl = connect, url, ddl

    def create(self, name: str) -> None:
        with self.connect(None) as conn:
            conn.cursor().execute(f"CREATE DATABASE {name}")
        with self.connect(name) as conn:
            for st in self.ddl:
                conn.cursor().execute(st)
        with peersync.connect(self.url(name)) as db:
            db.provision(SCOPE, ["item", "note"])

    def drop(self, name: str) -> None:
        with self.connect(None) as conn:
            drop_mariadb_database(conn, name)

    def _query(self, conn: Any, sql: str, args: tuple[Any, ...] = ()) -> Rows:
        cur = conn.cursor()
        cur.execute(sql, args)
        return [tuple(r) for r in cur.fetchall()]

    def snapshot(self, name: str) -> Snapshot:
        with self.connect(name) as conn:
            tables = self._query(
                conn,
                "SELECT table_name, auto_increment FROM information_schema.tables"
                " WHERE table_schema = %s AND table_type = 'BASE TABLE' ORDER BY table_name",
                (name,),
            )
            rows, columns = {}, {}
            for t, _ in tables:
                cur = conn.cursor()
                cur.execute(f"SELECT * FROM `{t}`")
                rows[f"`{t}`"] = [tuple(r) for r in cur.fetchall()]
                columns[f"`{t}`"] = [d[0] for d in cur.description]
            counters = {f"`{t}`": ai for t, ai in tables if ai is not None}
            return Snapshot(rows, columns, counters, self._shape(conn, name))

    def shape(self, name: str) -> Rows:
        with self.connect(name) as conn:
            return self._shape(conn, name)

    def _shape(self, conn: Any, name: str) -> Rows:
        out: Rows = []
        for what, sql in (
            (
                "table",
                "SELECT table_name, table_type, engine, table_collation FROM information_schema.tables"
                " WHERE table_schema = %s",
            ),
            (
                "column",
                "SELECT table_name, column_name, ordinal_position, column_type, is_nullable, column_default,"
                " collation_name, extra FROM information_schema.columns WHERE table_schema = %s",
            ),
            (
                "index",
                "SELECT table_name, index_name, seq_in_index, column_name, non_unique"
                " FROM information_schema.statistics WHERE table_schema = %s",
            ),
            (
                "trigger",
                "SELECT trigger_name, event_object_table, action_timing, event_manipulation, action_statement"
                " FROM information_schema.triggers WHERE trigger_schema = %s",
            ),
        ):
            out += sorted((what, *(str(v) for v in r)) for r in self._query(conn, sql, (name,)))
        return out

    def reset(self, name: str, snap: Snapshot, replica_id: bytes) -> None:
        with self.connect(name) as conn:
            cur = conn.cursor()
            # The triggers skip every write while @peersync_apply is set (as during an apply).
            cur.execute("SET @peersync_apply = 1, foreign_key_checks = 0, innodb_lock_wait_timeout = 20")
            cur.execute("BEGIN")
            for table in snap.rows:
                cur.execute(f"DELETE FROM {table}")
                rows = scope_rows(snap, table, replica_id, now_ms())
                if rows:
                    marks = ", ".join(["%s"] * len(rows[0]))
                    cur.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
            cur.execute("COMMIT")
            # An emptied table keeps its AUTO_INCREMENT counter; put back the snapshot's.
            have = dict(
                self._query(
                    conn,
                    "SELECT table_name, auto_increment FROM information_schema.tables WHERE table_schema = %s",
                    (name,),
                )
            )
            for table, value in snap.counters.items():
                if have.get(table.strip("`")) != value:
                    cur.execute(f"ALTER TABLE {table} AUTO_INCREMENT = {int(value)}")


class PostgresServer(Server):
    """PostgreSQL: ``admin`` is an autocommit psycopg connection to the
    server's admin database; ``url(name)`` a database's URL."""

    def __init__(self, admin: Any, url: Callable[[str], str], ddl: list[str]) -> None:
        self.admin, self.url, self.ddl = admin, url, ddl

    def _connect(self, name: str, **kw: Any) -> Any:
        import psycopg

        return psycopg.connect(self.url(name), **kw)

    def create(self, name: str) -> None:
        self.admin.execute(f'CREATE DATABASE "{name}"')
        with self._connect(name, autocommit=True) as conn:
            for st in self.ddl:
                conn.execute(st)
        with peersync.connect(self.url(name)) as db:
            db.provision(SCOPE, ["item", "note"])

    def drop(self, name: str) -> None:
        self.admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        self.admin.close()

    def snapshot(self, name: str) -> Snapshot:
        with self._connect(name, autocommit=True) as conn:
            tables = conn.execute(
                "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables"
                " WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
            ).fetchall()
            rows, columns = {}, {}
            for (t,) in tables:
                cur = conn.execute(f"SELECT * FROM {t}")
                rows[t] = [tuple(r) for r in cur.fetchall()]
                columns[t] = [d.name for d in cur.description or ()]
            seqs = conn.execute("SELECT format('%I.%I', schemaname, sequencename) FROM pg_sequences ORDER BY 1")
            counters = {s: conn.execute(f"SELECT last_value, is_called FROM {s}").fetchone() for (s,) in seqs}
            return Snapshot(rows, columns, counters, self._shape(conn))

    def shape(self, name: str) -> Rows:
        with self._connect(name, autocommit=True) as conn:
            return self._shape(conn)

    def _shape(self, conn: Any) -> Rows:
        # not pg_temp_N: a closed connection's backend drops its temporary tables after the
        # client has gone, so they can vanish under this query ("could not open relation")
        user = (
            "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%'"
            " AND n.nspname NOT LIKE 'pg_temp%%'"
        )
        out: Rows = []
        for what, sql in (
            (
                "relation",
                "SELECT n.nspname, c.relname, c.relkind, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod),"
                " a.attnotnull, pg_get_expr(d.adbin, d.adrelid) FROM pg_class AS c"
                " JOIN pg_namespace AS n ON n.oid = c.relnamespace"
                " LEFT JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
                " LEFT JOIN pg_attrdef AS d ON d.adrelid = c.oid AND d.adnum = a.attnum WHERE " + user,
            ),
            (
                "index",
                "SELECT n.nspname, c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index AS i"
                " JOIN pg_class AS c ON c.oid = i.indexrelid JOIN pg_namespace AS n ON n.oid = c.relnamespace"
                " WHERE " + user,
            ),
            (
                "trigger",
                "SELECT t.tgrelid::regclass::text, t.tgname, t.tgenabled, pg_get_triggerdef(t.oid)"
                " FROM pg_trigger AS t JOIN pg_class AS c ON c.oid = t.tgrelid"
                " JOIN pg_namespace AS n ON n.oid = c.relnamespace WHERE NOT t.tgisinternal AND " + user,
            ),
            (
                "function",
                "SELECT n.nspname, p.proname, md5(p.prosrc) FROM pg_proc AS p"
                " JOIN pg_namespace AS n ON n.oid = p.pronamespace WHERE " + user,
            ),
            (
                "constraint",
                "SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint AS c"
                " JOIN pg_namespace AS n ON n.oid = c.connamespace WHERE " + user,
            ),
        ):
            out += sorted((what, *(str(v) for v in r)) for r in conn.execute(sql).fetchall())
        return out

    def reset(self, name: str, snap: Snapshot, replica_id: bytes) -> None:
        with self._connect(name) as conn, conn.transaction():
            # Foreign keys' triggers do not fire for a replica session; peersync's
            # are ENABLE ALWAYS and do: its own tables are restored after the
            # user tables, over whatever those triggers wrote (the counters last).
            conn.execute("SET LOCAL session_replication_role = replica")
            conn.execute("SET LOCAL lock_timeout = '20s'")
            for table in sorted(snap.rows, key=lambda t: t.startswith("_peersync.")):
                conn.execute(f"DELETE FROM {table}")
                rows = scope_rows(snap, table, replica_id, now_ms())
                if rows:
                    marks = ", ".join(["%s"] * len(rows[0]))
                    conn.cursor().executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
            for seq, (value, called) in snap.counters.items():
                conn.execute("SELECT setval(%s, %s, %s)", (seq, value, called))
