"""Tracking the rows that foreign-key actions change on MariaDB.

InnoDB carries out ``ON DELETE CASCADE``, ``ON DELETE SET NULL`` and
``ON UPDATE CASCADE`` / ``SET NULL`` inside the storage engine and fires no
trigger for the rows they change, so the tracking triggers never see them:
a parent deleted by any client would take its children with it untracked,
and peers would keep them for ever. peersync therefore puts a ``BEFORE``
trigger on every table whose actions reach a tracked table, tracked or not
(``_peersync_cd_<table>`` before DELETE, ``_peersync_cu_<table>`` before
UPDATE), which records, before the engine acts, every tracked row the action
will change:

- a delete follows each chain of ``ON DELETE CASCADE`` keys from the deleted
  row (through untracked tables too, and round cycles, as deep as InnoDB
  itself goes: 15 levels) and records the rows at its end as deleted, or as
  updated where the last key is ``SET NULL``;
- an update that changes referenced columns records the rows of the direct
  children it cascades to or nulls as updated (a key change when the key
  includes the foreign key: a delete of the old key and an insert of the new).

The rows are read ``LOCK IN SHARE MODE`` (the latest committed state, the
one the engine acts on, locked until the end of the transaction; ``FOR
UPDATE`` is refused on the trigger's own table); the statement is
atomic, so a delete refused later (``RESTRICT`` elsewhere) records nothing.
The triggers also run during peersync's own applies: a cascade there is a
local change, as on SQLite. Not followed: an ``ON UPDATE CASCADE`` that
changes columns a grandchild references in turn (one level only).

They depend on every tracked table of the database, so :func:`refresh`
rebuilds them all after any provisioning change.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace

from peersync._engine.errors import SyncError, TableError

from .conn import Conn, q
from .schema import FRESH_CREATION, KEEP_CREATION, PREFIX, Tracked, introspect

MAX_DEPTH = 15  # InnoDB refuses cascades nested deeper
MAX_PATHS = 256
_ACTS = ("CASCADE", "SET NULL")


@dataclass(frozen=True)
class ForeignKey:
    """One foreign key: ``child.cols`` references ``parent.refs``."""

    name: str
    child: str
    parent: str
    cols: tuple[str, ...]
    refs: tuple[str, ...]
    on_delete: str
    on_update: str


def foreign_keys(conn: Conn) -> list[ForeignKey]:
    """Every foreign key between tables of this database."""
    parts: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    head: dict[tuple[str, str], tuple[str, str, str]] = {}
    for name, child, parent, dele, upd, col, ref in conn.execute(
        "SELECT rc.constraint_name, rc.table_name, rc.referenced_table_name, rc.delete_rule, rc.update_rule,"
        " k.column_name, k.referenced_column_name FROM information_schema.referential_constraints AS rc"
        " JOIN information_schema.key_column_usage AS k ON k.constraint_schema = rc.constraint_schema"
        " AND k.constraint_name = rc.constraint_name AND k.table_name = rc.table_name"
        " WHERE rc.constraint_schema = DATABASE() AND k.referenced_table_schema = DATABASE()"
        " ORDER BY rc.table_name, rc.constraint_name, k.ordinal_position"
    ).fetchall():
        parts[(child, name)].append((col, ref))
        head[(child, name)] = (parent, dele.upper(), upd.upper())
    out = []
    for (child, name), cols in parts.items():
        parent, on_delete, on_update = head[(child, name)]
        refs = tuple(r for _, r in cols)
        out.append(ForeignKey(name, child, parent, tuple(c for c, _ in cols), refs, on_delete, on_update))
    return out


def _declare(decl: str) -> str:
    """A key column's type as a stored-program variable type (same charset and collation)."""
    if " COLLATE " not in decl:
        return decl
    typ, coll = decl.split(" COLLATE ", 1)
    return f"{typ} CHARACTER SET {coll.split('_')[0]} COLLATE {coll}"


def _match(a: str, cols: tuple[str, ...], b: str, refs: tuple[str, ...]) -> str:
    return " AND ".join(f"{a}.{q(c)} = {b}.{q(r)}" for c, r in zip(cols, refs, strict=True))


def _block(t: Tracked, select: str, body: list[str]) -> str:
    """A loop over ``select`` (``t``'s key values, as v0, v1, ...) running ``body`` per row."""
    vs = [f"v{i}" for i in range(len(t.kcols))]
    decls = " ".join(f"DECLARE {v} {_declare(d)};" for v, d in zip(vs, t.key_decl, strict=True))
    return (
        f"BEGIN DECLARE done INT DEFAULT 0; {decls} DECLARE c CURSOR FOR {select} LOCK IN SHARE MODE;"
        " DECLARE CONTINUE HANDLER FOR NOT FOUND SET done = 1; OPEN c;"
        f" lp: LOOP FETCH c INTO {', '.join(vs)}; IF done THEN LEAVE lp; END IF; {' '.join(body)}"
        " END LOOP; CLOSE c; END;"
    )


def _delete_paths(fks: list[ForeignKey], root: str, tracked: dict[str, Tracked]) -> list[list[ForeignKey]]:
    """Chains of delete actions from ``root`` ending at a tracked table,
    updates (``SET NULL``) before deletes, so a row both nulled and deleted
    is recorded deleted."""
    out: list[list[ForeignKey]] = []
    by_parent: dict[str, list[ForeignKey]] = defaultdict(list)
    for fk in fks:
        if fk.on_delete in _ACTS:
            by_parent[fk.parent].append(fk)

    def walk(table: str, path: list[ForeignKey]) -> None:
        if len(path) >= MAX_DEPTH:
            return
        for fk in by_parent[table]:
            here = [*path, fk]
            if fk.child in tracked:
                out.append(here)
                if len(out) > MAX_PATHS:
                    raise TableError(
                        f"the foreign keys under table {root} cascade along more than {MAX_PATHS} paths;"
                        " peersync cannot track their effects"
                    )
            if fk.on_delete == "CASCADE":
                walk(fk.child, here)

    walk(root, [])
    return sorted(out, key=lambda p: p[-1].on_delete == "CASCADE")


def _delete_trigger(root: str, paths: list[list[ForeignKey]], tracked: dict[str, Tracked]) -> str:
    blocks = []
    for path in paths:
        t = tracked[path[-1].child]
        aliases = [f"{PREFIX}a{i}" for i in range(len(path))]
        joins = f"{q(path[0].child)} AS {aliases[0]}" + "".join(
            f" JOIN {q(fk.child)} AS {a} ON {_match(a, fk.cols, prev, fk.refs)}"
            for fk, a, prev in zip(path[1:], aliases[1:], aliases[:-1], strict=True)
        )
        last = aliases[-1]
        select = (
            f"SELECT {', '.join(f'{last}.{q(k)}' for k in t.schema.key)} FROM {joins}"
            f" WHERE {_match(aliases[0], path[0].cols, 'OLD', path[0].refs)}"
        )
        gone = 1 if path[-1].on_delete == "CASCADE" else 0
        vs = ", ".join(f"v{i}" for i in range(len(t.kcols)))
        blocks.append(_block(t, select, [t.stamp(vs, gone, KEEP_CREATION)]))
    return (
        f"CREATE TRIGGER {q(name_of('cd', root))} BEFORE DELETE ON {q(root)} FOR EACH ROW BEGIN {' '.join(blocks)} END"
    )


def _update_trigger(root: str, fks: list[ForeignKey], tracked: dict[str, Tracked]) -> str:
    blocks = []
    for fk in fks:
        t = tracked[fk.child]
        changed = " AND ".join(f"BINARY OLD.{q(r)} <=> BINARY NEW.{q(r)}" for r in fk.refs)
        a = PREFIX + "a0"
        select = f"SELECT {', '.join(f'{a}.{q(k)}' for k in t.schema.key)} FROM {q(fk.child)} AS {a}"
        select += f" WHERE {_match(a, fk.cols, 'OLD', fk.refs)}"
        vs = [f"v{i}" for i in range(len(t.kcols))]
        ref_of = dict(zip(fk.cols, fk.refs, strict=True))
        if fk.on_update == "CASCADE" and any(k in ref_of for k in t.schema.key):
            new = ", ".join(f"NEW.{q(ref_of[k])}" if k in ref_of else v for k, v in zip(t.schema.key, vs, strict=True))
            body = [t.stamp(", ".join(vs), 1, KEEP_CREATION), t.stamp(new, 0, FRESH_CREATION)]
        else:
            body = [t.stamp(", ".join(vs), 0, KEEP_CREATION)]
        blocks.append(f"IF NOT ({changed}) THEN {_block(t, select, body)} END IF;")
    return (
        f"CREATE TRIGGER {q(name_of('cu', root))} BEFORE UPDATE ON {q(root)} FOR EACH ROW BEGIN {' '.join(blocks)} END"
    )


def name_of(kind: str, table: str) -> str:
    return f"{PREFIX}{kind}_{table}"[:64]


def plan(conn: Conn, tracked: dict[str, Tracked]) -> list[str]:
    """The cascade triggers ``tracked`` (every tracked table, with its log id) needs."""
    fks = [fk for fk in foreign_keys(conn) if not fk.child.lower().startswith(PREFIX)]
    out = []
    for root in sorted({fk.parent for fk in fks}):
        paths = _delete_paths(fks, root, tracked)
        if paths:
            out.append(_delete_trigger(root, paths, tracked))
        ups = [fk for fk in fks if fk.parent == root and fk.on_update in _ACTS and fk.child in tracked]
        if ups:
            out.append(_update_trigger(root, ups, tracked))
    return out


def drop_all(conn: Conn) -> None:
    like = PREFIX.replace("_", "\\_") + "c_\\_%"
    for name, table in conn.execute(
        "SELECT trigger_name, event_object_table FROM information_schema.triggers"
        " WHERE trigger_schema = DATABASE() AND trigger_name LIKE %s",
        (like,),
    ).fetchall():
        if name in (name_of("cd", table), name_of("cu", table)):
            conn.execute(f"DROP TRIGGER IF EXISTS {q(name)}")


def refresh(conn: Conn, tids: dict[str, int]) -> None:
    """Replace every cascade trigger by those the tracked tables ``tids``
    (name -> log id) need now. Raises :class:`~peersync.TableError` for a
    cascade graph too large to follow."""
    tracked: dict[str, Tracked] = {}
    for name, tid in tids.items():
        try:
            tracked[name] = replace(introspect(conn, name), tid=tid)
        except SyncError:
            continue  # a tracked table dropped behind peersync's back: describe reports it
    wanted = plan(conn, tracked)
    drop_all(conn)
    for ddl in wanted:
        conn.execute(ddl)
