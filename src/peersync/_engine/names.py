"""Names that differ between peers: a scope's global names and one database's own.

A scope names its tables and columns once (its *global* names: what travels
on the wire, what the fingerprint covers, what conflicts show). A database
whose own names differ is provisioned with a names mapping, global to local,
only where they differ; TOML, as the CLI reads it::

    [Album]
    table = "album"
    columns = { AlbumId = "album_id", Title = "title", ArtistId = "artist_id" }

Adapters work in local names throughout (their SQL, their tracking, their
conflict log) and translate at the Peer boundary with a :class:`Names`:
schemas, batches and conflicts leave in global names and come in translated
back. Pure: the file is read by
:func:`peersync._adapters.sql.names_file.load_names`.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Union

import msgpack

from .errors import ConfigurationError, ScopeError, TableError
from .model import (
    ApplyReport,
    Conflict,
    ConflictCallback,
    ConflictHandler,
    Outcome,
    Policy,
    Resolution,
    SessionEnd,
    TableSchema,
    Value,
)


@dataclass(frozen=True)
class TableNames:
    """One table's local names: the table's, and its columns' by global name."""

    table: str
    columns: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Names:
    """A database's names for one scope, by global table name; a table not
    listed has the same names here as its global ones. ``Names()`` maps
    nothing (every method is then the identity)."""

    tables: Mapping[str, TableNames] = field(default_factory=dict)
    _out: dict[str, str] = field(init=False, repr=False, compare=False, default_factory=dict)
    _in: dict[str, str] = field(init=False, repr=False, compare=False, default_factory=dict)
    _cols_out: dict[str, dict[str, str]] = field(init=False, repr=False, compare=False, default_factory=dict)
    _cols_in: dict[str, dict[str, str]] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        for g, tn in self.tables.items():
            self._out[tn.table] = g
            self._in[g] = tn.table
            self._cols_out[tn.table] = {loc: glob for glob, loc in tn.columns.items()}
            self._cols_in[tn.table] = dict(tn.columns)

    def __bool__(self) -> bool:
        return bool(self.tables)

    # -- reading and storing -------------------------------------------------------------
    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "names") -> Names:
        """Names from the TOML shape (``{global: {"table": local, "columns":
        {global: local}}}``). Raises :class:`~peersync.ConfigurationError` for
        anything else, or for two global names given one local name."""
        if not isinstance(data, Mapping):
            raise ConfigurationError(f"{where}: expected a table per global table name, not {type(data).__name__}")
        tables: dict[str, TableNames] = {}
        locals_seen: dict[str, str] = {}
        for g, entry in data.items():
            if not isinstance(g, str) or not g:
                raise ConfigurationError(f"{where}: a global table name must be a non-empty string, not {g!r}")
            if not isinstance(entry, Mapping):
                raise ConfigurationError(f"{where}: [{g}] must be a table with 'table' and/or 'columns'")
            extra = sorted(set(entry) - {"table", "columns"})
            if extra:
                raise ConfigurationError(f"{where}: [{g}] has unknown key {extra[0]!r} (use 'table' and 'columns')")
            local = entry.get("table", g)
            if not isinstance(local, str) or not local:
                raise ConfigurationError(f"{where}: [{g}] table must be a non-empty string")
            cols = entry.get("columns", {})
            if not isinstance(cols, Mapping):
                raise ConfigurationError(f"{where}: [{g}] columns must be a table of global = local names")
            seen: dict[str, str] = {}
            for gc, lc in cols.items():
                if not isinstance(gc, str) or not gc or not isinstance(lc, str) or not lc:
                    raise ConfigurationError(f"{where}: [{g}] columns must map names to non-empty names")
                if lc.lower() in seen:
                    raise ConfigurationError(
                        f"{where}: [{g}] maps columns {seen[lc.lower()]} and {gc} to the same local column {lc}"
                    )
                seen[lc.lower()] = gc
            if local.lower() in locals_seen:
                raise ConfigurationError(
                    f"{where}: tables {locals_seen[local.lower()]} and {g} map to the same local table {local}"
                )
            locals_seen[local.lower()] = g
            kept = {gc: lc for gc, lc in cols.items() if gc != lc}
            if local != g or kept:
                tables[g] = TableNames(local, kept)
        return cls(tables)

    def to_mapping(self) -> dict[str, dict[str, Any]]:
        """The TOML shape (what ``peersync status`` shows)."""
        return {g: {"table": tn.table, "columns": dict(tn.columns)} for g, tn in self.tables.items()}

    def to_json(self) -> str:
        return json.dumps(self.to_mapping(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> Names:
        return cls() if not text else cls.from_mapping(json.loads(text), "stored names")

    # -- provisioning ----------------------------------------------------------------------
    def local_table(self, table: str) -> str:
        """This database's name for global table ``table``."""
        return self._in.get(table, table)

    def global_table(self, local: str) -> str:
        """The global name of this database's table ``local``."""
        return self._out.get(local, local)

    def check_tables(self, tables: Sequence[str]) -> None:
        """Refuse a mapping of a table outside ``tables`` (a scope's global
        names) and two tables that would share one local name. Raises
        :class:`~peersync.ScopeError`."""
        for g in self.tables:
            if g not in tables:
                raise ScopeError(f"names map table {g}, which is not among the scope's tables ({', '.join(tables)})")
        taken: dict[str, str] = {}
        for g in tables:
            local = self.local_table(g).lower()
            # A table named twice (``--table item --table Item``) is one table,
            # as without names; a mapped one must not land on another.
            other = taken.get(local)
            if other is not None and other != g and (g in self.tables or other in self.tables):
                raise ScopeError(f"tables {other} and {g} would both be table {self.local_table(g)} here")
            taken[local] = g

    def resolved(self, table: str, schema: TableSchema) -> Names:
        """These names with global table ``table``'s entry spelled as this
        database spells it (``schema``, introspected); raises
        :class:`~peersync.TableError` for a mapped column the table lacks or a
        global column name given twice."""
        tn = self.tables.get(table)
        if tn is None:
            return self
        by_lower = {c.lower(): c for c in schema.columns}
        cols: dict[str, str] = {}
        for gc, lc in tn.columns.items():
            found = lc if lc in schema.columns else by_lower.get(lc.lower())
            if found is None:
                raise TableError(f"names map column {table}.{gc} to {lc}, which table {schema.name} does not have")
            cols[gc] = found
        out = Names({**self.tables, table: TableNames(schema.name, cols)})
        out.schema_out(schema)
        return out

    # -- the Peer boundary ---------------------------------------------------------------
    def schema_out(self, s: TableSchema) -> TableSchema:
        """Local table shape ``s`` in global names."""
        if not self:
            return s
        cols = self._cols_out.get(s.name, {})
        name = self.global_table(s.name)
        if not cols and name == s.name:
            return s
        columns = tuple(cols.get(c, c) for c in s.columns)
        if len({c.lower() for c in columns}) != len(columns):
            raise TableError(f"names give two columns of table {s.name} the same global name")
        return TableSchema(
            name, columns, tuple(cols.get(c, c) for c in s.key), s.types,
            tuple(replace(c, name=cols.get(c.name, c.name)) for c in s.specs),
        )  # fmt: skip

    def row_out(self, local: str, row: dict[str, Value] | None) -> dict[str, Value] | None:
        cols = self._cols_out.get(local)
        return row if not cols or row is None else {cols.get(c, c): v for c, v in row.items()}

    def row_in(self, local: str, row: dict[str, Value] | None) -> dict[str, Value] | None:
        cols = self._cols_in.get(local)
        return row if not cols or row is None else {cols.get(c, c): v for c, v in row.items()}

    def conflict_out(self, c: Conflict) -> Conflict:
        """A conflict as this database logged it, in global names; its detail
        says the local table name."""
        if not self or c.table not in self._out:
            return c
        note = _here(c.table)
        detail = c.detail if c.detail.endswith(note) else c.detail + note
        return replace(
            c, table=self._out[c.table], local_row=self.row_out(c.table, c.local_row),
            remote_row=self.row_out(c.table, c.remote_row), detail=detail,
        )  # fmt: skip

    def conflict_in(self, c: Conflict) -> Conflict:
        """A conflict in global names (a session's failures), as this database logs it."""
        if not self or c.table not in self._in:
            return c
        local = self._in[c.table]
        note = _here(local)
        detail = c.detail[: -len(note)] if c.detail.endswith(note) else c.detail
        return replace(
            c, table=local, local_row=self.row_in(local, c.local_row),
            remote_row=self.row_in(local, c.remote_row), detail=detail,
        )  # fmt: skip

    def conflicts_out(self, cs: Iterable[Conflict]) -> list[Conflict]:
        return [self.conflict_out(c) for c in cs]

    def handler(self, h: ConflictHandler) -> ConflictHandler:
        """``h`` as an adapter calls it (with local names): a callback sees
        the conflict in global names and its merged row is translated back."""
        if not self or isinstance(h, Policy):
            return h
        callback: ConflictCallback = h

        @functools.wraps(callback)
        def local_callback(c: Conflict) -> Resolution | Outcome:
            answer = callback(self.conflict_out(c))
            if isinstance(answer, Resolution) and answer.row is not None:
                return Resolution(answer.outcome, self.row_in(c.table, answer.row))
            return answer

        return local_callback

    def report_out(self, r: ApplyReport) -> ApplyReport:
        if self and r.failed:
            r.failed = self.conflicts_out(r.failed)
        return r

    def end_in(self, end: SessionEnd) -> SessionEnd:
        if not self or not end.failures:
            return end
        return replace(end, failures=tuple(self.conflict_in(c) for c in end.failures))

    @property
    def wire_tables(self) -> dict[str, str]:
        """Global table names by local name, where they differ."""
        return self._out

    def batch_out(self, data: bytes) -> bytes:
        """An encoded batch with its tables' local names made global."""
        return rename_batch_tables(data, self._out) if self else data

    def batch_in(self, data: bytes) -> bytes:
        """An encoded batch with its tables' global names made local."""
        return rename_batch_tables(data, self._in) if self else data


def _here(local: str) -> str:
    return f" (table {local} here)"


NamesArg = Union["Names", Mapping[str, Any], str, "os.PathLike[str]", None]
"""What ``provision(..., names=...)`` accepts."""


def rename_batch_tables(data: bytes, names: Mapping[str, str]) -> bytes:
    """``data`` (an encoded batch) with each table named in ``names``
    renamed, its rows copied as they are (not decoded). Bytes that are not a
    well-formed batch come back unchanged: the apply's own checks refuse them."""
    if not names:
        return data
    u = msgpack.Unpacker(raw=False, strict_map_key=True, max_buffer_size=len(data) or 1)
    u.feed(data)
    pieces: list[bytes] = []
    try:
        if u.read_array_header() != 12:
            return data
        for _ in range(10):
            u.skip()
        ntables = u.read_array_header()
        done = 0  # data[:done] is in pieces
        for _ in range(ntables):
            if u.read_array_header() != 3:
                return data
            at = u.tell()
            name = u.unpack()
            after = u.tell()
            u.skip()
            u.skip()
            new = names.get(name) if isinstance(name, str) else None
            if new is not None:
                pieces += [data[done:at], msgpack.packb(new, use_bin_type=True), data[after : u.tell()]]
                done = u.tell()
        pieces.append(data[done:])
    except Exception:  # msgpack raises several unrelated types; the apply reports it properly
        return data
    return b"".join(pieces)
