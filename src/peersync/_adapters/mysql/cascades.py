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

- from the deleted or updated row, every chain of actions is followed (through
  untracked tables too, and round delete cycles, as deep as InnoDB itself
  goes: 15 levels): ``ON DELETE CASCADE`` deletes the next rows; ``ON DELETE
  SET NULL``, ``ON UPDATE SET NULL`` and ``ON UPDATE CASCADE`` update them, and
  an updated row's changed columns carry on to the rows whose foreign keys
  reference them (``ON UPDATE`` actions, only where a referenced value really
  changes). The tracked rows at the end of each chain are recorded deleted,
  updated, or (an update that changes their key) as a delete of the old key
  and an insert of the new one. ``SET DEFAULT`` needs nothing: InnoDB keeps
  such a key but not its action (it restricts).

The rows are read ``LOCK IN SHARE MODE`` (the latest committed state, the
one the engine acts on, locked until the end of the transaction; ``FOR
UPDATE`` is refused on the trigger's own table); the statement is
atomic, so a delete refused later (``RESTRICT`` elsewhere) records nothing.
The triggers also run during peersync's own applies: a cascade there is a
local change, as on SQLite.

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
    """One foreign key: table ``child`` references table ``parent``."""

    name: str
    child: str
    parent: str
    pairs: tuple[tuple[str, str], ...]  # (child column, the parent column it references), in key order
    on_delete: str
    on_update: str

    @property
    def cols(self) -> tuple[str, ...]:
        return tuple(c for c, _ in self.pairs)

    @property
    def refs(self) -> tuple[str, ...]:
        return tuple(r for _, r in self.pairs)

    def match(self, child: str, parent: str) -> str:
        """SQL: the row aliased ``child`` references the row aliased ``parent``."""
        return " AND ".join(f"{child}.{q(c)} = {parent}.{q(r)}" for c, r in self.pairs)


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
        out.append(ForeignKey(name, child, parent, tuple(cols), on_delete, on_update))
    return out


def _declare(decl: str) -> str:
    """A key column's type as a stored-program variable type (same charset and collation)."""
    if " COLLATE " not in decl:
        return decl
    typ, coll = decl.split(" COLLATE ", 1)
    return f"{typ} CHARACTER SET {coll.split('_')[0]} COLLATE {coll}"


def _block(t: Tracked, select: str, body: list[str], rekeyed: bool = False) -> str:
    """A loop over ``select`` (``t``'s key values, as v0, v1, ..., then with
    ``rekeyed`` the key values after the action, as w0, w1, ...) running ``body`` per row."""
    vs = [f"v{i}" for i in range(len(t.kcols))]
    ws = [f"w{i}" for i in range(len(t.kcols))] if rekeyed else []
    decls = " ".join(f"DECLARE {v} {_declare(d)};" for v, d in zip(vs + ws, t.key_decl * 2, strict=False))
    return (
        f"BEGIN DECLARE done INT DEFAULT 0; {decls} DECLARE c CURSOR FOR {select} LOCK IN SHARE MODE;"
        " DECLARE CONTINUE HANDLER FOR NOT FOUND SET done = 1; OPEN c;"
        f" lp: LOOP FETCH c INTO {', '.join(vs + ws)}; IF done THEN LEAVE lp; END IF; {' '.join(body)}"
        " END LOOP; CLOSE c; END;"
    )


@dataclass(frozen=True)
class _Path:
    """A chain of foreign-key actions from a root row to the rows of
    ``steps[-1].child`` it reaches. ``updated``: those rows are updated (a
    ``SET NULL``, or an update cascade), not deleted; ``new``: their columns
    the chain changes, each with its value afterwards as SQL (the root's
    ``NEW.col``, or ``NULL``): a cascade copies the referenced value, which
    comes from the root or from a ``SET NULL`` up the chain."""

    steps: tuple[ForeignKey, ...]
    updated: bool
    new: tuple[tuple[str, str], ...]
    where: tuple[str, ...] = ()  # each update step acts only on rows whose referenced columns change


def _next(path: _Path | None, fk: ForeignKey, root_new: dict[str, str]) -> _Path | None:
    """``path`` (None: the root row itself, deleted when ``root_new`` is
    empty, else updated to it) carried one step further through ``fk``, or
    None when InnoDB's action there changes nothing."""
    before = path.steps if path else ()
    updated = bool(root_new) if path is None else path.updated
    changed = root_new if path is None else dict(path.new)
    where = path.where if path else ()
    if not updated:
        if fk.on_delete == "CASCADE":
            return _Path((*before, fk), False, (), where)
        if fk.on_delete != "SET NULL":
            return None
        new = {c: "NULL" for c in fk.cols}
    else:
        # An update reaches a child only through referenced columns it changes.
        if fk.on_update not in _ACTS or not any(r in changed for r in fk.refs):
            return None
        if any(f.parent == fk.child for f in before) or fk.child == fk.parent:
            return None  # InnoDB refuses an update cascade that comes back to a table it changed
        prev = f"{PREFIX}a{len(before) - 1}" if before else "OLD"
        same = " AND ".join(f"BINARY {prev}.{q(r)} <=> BINARY {changed[r]}" for r in fk.refs if r in changed)
        where = (*where, f"NOT ({same})")
        if fk.on_update == "SET NULL":
            new = {c: "NULL" for c in fk.cols}
        else:
            new = {c: changed[r] for c, r in fk.pairs if r in changed}
    return _Path((*before, fk), True, tuple(new.items()), where)


def _paths(fks: list[ForeignKey], root: str, tracked: dict[str, Tracked], root_new: dict[str, str]) -> list[_Path]:
    """Every chain of actions from a row of ``root`` (deleted, or updated to
    ``root_new``) that ends at a tracked table, as deep as InnoDB goes;
    updates before deletes, so a row both nulled and deleted is recorded deleted."""
    out: list[_Path] = []
    by_parent: dict[str, list[ForeignKey]] = defaultdict(list)
    for fk in fks:
        by_parent[fk.parent].append(fk)

    def walk(table: str, path: _Path | None) -> None:
        if path is not None and len(path.steps) >= MAX_DEPTH:
            return
        for fk in by_parent[table]:
            here = _next(path, fk, root_new)
            if here is None:
                continue
            if fk.child in tracked:
                out.append(here)
                if len(out) > MAX_PATHS:
                    raise TableError(
                        f"the foreign keys under table {root} cascade along more than {MAX_PATHS} paths;"
                        " peersync cannot track their effects"
                    )
            walk(fk.child, here)

    walk(root, None)
    return sorted(out, key=lambda p: not p.updated)


def _record(path: _Path, tracked: dict[str, Tracked], update: bool) -> str:
    """The block that records the tracked rows at the end of ``path`` (read
    before the action, as they are now): deleted, updated, or, when the
    chain changes their key, the old key deleted and the new one inserted.
    ``update``: the root row is updated; the chain starts only if the
    columns its first key references change, tested before any read."""
    t = tracked[path.steps[-1].child]
    aliases = [f"{PREFIX}a{i}" for i in range(len(path.steps))]
    joins = f"{q(path.steps[0].child)} AS {aliases[0]}" + "".join(
        f" JOIN {q(fk.child)} AS {a} ON {fk.match(a, prev)}"
        for fk, a, prev in zip(path.steps[1:], aliases[1:], aliases[:-1], strict=True)
    )
    first, *rest = path.where if update else ("", *path.where)
    where = [path.steps[0].match(aliases[0], "OLD"), *rest]
    last = aliases[-1]
    new = dict(path.new)
    select = f"SELECT {', '.join(f'{last}.{q(k)}' for k in t.schema.key)}"
    rekeyed = path.updated and any(k in new for k in t.schema.key)
    if rekeyed:
        select += ", " + ", ".join(new.get(k, f"{last}.{q(k)}") for k in t.schema.key)
    select += f" FROM {joins} WHERE {' AND '.join(where)}"
    vs = ", ".join(f"v{i}" for i in range(len(t.kcols)))
    if not path.updated:
        body = [t.stamp(vs, 1, KEEP_CREATION)]
    elif rekeyed:
        ws = ", ".join(f"w{i}" for i in range(len(t.kcols)))
        same = " AND ".join(f"v{i} <=> w{i}" for i in range(len(t.kcols)))
        body = [
            f"IF {same} THEN {t.stamp(vs, 0, KEEP_CREATION)}"
            f" ELSE {t.stamp(vs, 1, KEEP_CREATION)} {t.stamp(ws, 0, FRESH_CREATION)} END IF;"
        ]
    else:
        body = [t.stamp(vs, 0, KEEP_CREATION)]
    block = _block(t, select, body, rekeyed)
    return f"IF {first} THEN {block} END IF;" if first else block


def name_of(kind: str, table: str) -> str:
    return f"{PREFIX}{kind}_{table}"[:64]


def plan(conn: Conn, tracked: dict[str, Tracked]) -> list[str]:
    """The cascade triggers ``tracked`` (every tracked table, with its log id) needs."""
    fks = [fk for fk in foreign_keys(conn) if not fk.child.lower().startswith(PREFIX)]
    columns: dict[str, list[str]] = defaultdict(list)
    for name, col in conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = DATABASE()"
        " ORDER BY table_name, ordinal_position"
    ).fetchall():
        columns[name].append(col)
    out = []
    for root in sorted({fk.parent for fk in fks}):
        for kind, event, root_new in (
            ("cd", "DELETE", {}),
            ("cu", "UPDATE", {c: f"NEW.{q(c)}" for c in columns[root]}),
        ):
            paths = _paths(fks, root, tracked, root_new)
            if paths:
                blocks = " ".join(_record(p, tracked, bool(root_new)) for p in paths)
                head = f"CREATE TRIGGER {q(name_of(kind, root))} BEFORE {event} ON {q(root)} FOR EACH ROW"
                out.append(f"{head} BEGIN {blocks} END")
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
