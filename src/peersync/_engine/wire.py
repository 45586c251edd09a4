"""The batch wire format: compact msgpack, validated strictly on the way in.

A batch is one msgpack array::

    ["peersync-batch", 2, scope, source_id, fingerprint, made_with,
     first, last, final, replicas, tables, extras]

``replicas`` lists the replica ids the rows refer to (index 0 is the source;
an id may repeat); ``tables`` is ``[[name, base_time, [row, ...]], ...]``. A
row takes one of two forms::

    [tick_offset, time_offset, *values]
    [tick_offset, flags, version_replica, version_tick | nil,
     creation_replica | nil, creation_tick | nil, time_offset, *values]

The first, short, form is a live row whose version is the source's own
tick and whose creation is that same version, made with no knowledge
beyond ``made_with``: every row of an initial sync from the replica that
made them. The second spells everything out.

``tick_offset`` is the row's source tick minus ``first - 1`` (strictly
increasing within a table); ``time_offset`` is its change time minus the
table's ``base_time``; both keep integers small without a running sum,
so SQL can both emit and read them. ``version_tick`` is nil
when the version is the source's own tick; a nil creation means "same as the
version"; ``flags`` bit 0 marks a tombstone, whose non-key values are nil,
and ``flags >> 1``, when not 0, picks an entry of ``extras``: knowledge the row
was made with beyond ``made_with`` (the row arrived at the source in a session
that has not completed, so the source's own knowledge lacks part of what that
row's version supersedes). Rows carry every column in table order, so a
row's length (2 or 7 plus the table's columns) tells its form. A short row
costs two small integers of metadata beyond its values (and the destination
binds no NULL header fields for it), a full one about eight bytes; a SQL
query can emit both.
Values are msgpack nil, integers, floats, strings and bin; a TEXT value that
is not valid UTF-8 (:class:`~peersync.RawText`) is msgpack ext type 1 with
its bytes.

:func:`decode_batch` refuses anything malformed, truncated or inconsistent
with :class:`~peersync.ProtocolError` and never returns a partial batch.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import msgpack

from .errors import ProtocolError, SchemaMismatch
from .knowledge import REPLICA_ID_BYTES, Knowledge, Version
from .model import Batch, BatchHead, Change, RawText, TableSchema

MAGIC = "peersync-batch"
FORMAT = 2  # 2: the short row form
EXT_RAW_TEXT = 1
_VALUE_TYPES = (type(None), int, float, str, bytes, RawText)


def _pack_ext(v: object) -> msgpack.ExtType:
    if type(v) is RawText:
        return msgpack.ExtType(EXT_RAW_TEXT, v.data)
    raise TypeError(f"cannot send a value of type {type(v).__name__}")


def _unpack_ext(code: int, data: bytes) -> RawText:
    if code != EXT_RAW_TEXT:
        raise ProtocolError(f"malformed batch: unknown msgpack extension {code}")
    return RawText(data)


def encode_batch(batch: Batch, schemas: Mapping[str, TableSchema]) -> bytes:
    """Encode a batch (the reference encoder; SQLite peers emit rows from SQL)."""
    source = batch.source
    replicas: dict[bytes, int] = {source: 0}
    tables: list[list[Any]] = []
    for name, rows in batch.changes.items():
        out: list[list[Any]] = []
        first0 = batch.first - 1
        base_time = rows[0][4] if rows else 0
        schema = schemas[name]
        marks = batch.extra_of.get(name) or [0] * len(rows)
        for (lt, deleted, version, creation, ctime, values), mark in zip(rows, marks, strict=True):
            if deleted:
                full: list[Any] = [None] * len(schema.columns)
                for pos, v in zip(schema.key_positions, values, strict=True):
                    full[pos] = v
                values = tuple(full)
            vrid, vtick = version
            vrep = replicas.setdefault(vrid, len(replicas))
            own = vrep == 0 and vtick == lt
            if own and creation == version and not deleted and not mark:
                out.append([lt - first0, ctime - base_time, *values])
                continue
            if creation == version:
                crep: int | None = None
                ctick: int | None = None
            else:
                crep = replicas.setdefault(creation[0], len(replicas))
                ctick = creation[1]
            out.append(
                [
                    lt - first0,
                    (1 if deleted else 0) | mark << 1,
                    vrep,
                    None if own else vtick,
                    crep,
                    ctick,
                    ctime - base_time,
                    *values,
                ]
            )
        tables.append([name, base_time, out])
    return pack_batch(
        batch.scope, source, batch.fingerprint, batch.made_with, batch.first, batch.last, batch.final,
        list(replicas), tables, batch.extras,
    )  # fmt: skip


@dataclass(frozen=True)
class PackedRows:
    """A table's rows, each already encoded by :func:`row_packer` (a source that
    reads rows one at a time keeps only their bytes, and counts them)."""

    count: int
    parts: Sequence[bytes]


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused for the block, and on again
    after it if it was on. For decoding a batch: tens of thousands of row
    lists that all survive the decoding, so every 700 of them start a
    collection that walks them again, every tenth of those a deeper one, and
    now and then a full one (about 3% of an initial sync's CPU, all of it in
    the decoding). Lists of plain values form no cycles: nothing is lost by
    collecting after the block instead (one young collection then walks them
    once). The switch is the process's: a thread that turns the collector off
    during the block finds it on again after it."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def row_packer() -> Callable[[Sequence[Any]], bytes]:
    """Encode one row as :func:`pack_batch` would inside a table's row list."""
    pack: Callable[[Sequence[Any]], bytes] = msgpack.Packer(use_bin_type=True, default=_pack_ext).pack
    return pack


def pack_batch(
    scope: str,
    source: bytes,
    fingerprint: str,
    made_with: Knowledge,
    first: int,
    last: int,
    final: bool,
    replicas: Sequence[bytes],
    tables: Sequence[Sequence[Any]],
    extras: Sequence[Knowledge],
) -> bytes:
    """The envelope around rows already in wire form (see the module docstring).

    A table's rows are a list of rows or :class:`PackedRows`; msgpack is a
    concatenation, so packed rows go in as they are."""
    p = msgpack.Packer(use_bin_type=True, default=_pack_ext)
    head = [MAGIC, FORMAT, scope, source, fingerprint, made_with.to_wire(), first, last, final, list(replicas)]
    out = [p.pack_array_header(12), *(p.pack(x) for x in head), p.pack_array_header(len(tables))]
    for name, base, rows in tables:
        out += [p.pack_array_header(3), p.pack(name), p.pack(base)]
        if isinstance(rows, PackedRows):
            out += [p.pack_array_header(rows.count), *rows.parts]
        else:
            out.append(p.pack(list(rows)))
    out.append(p.pack([k.to_wire() for k in extras]))
    return b"".join(out)


def batch_end(data: bytes) -> tuple[int, bool]:
    """A batch's ``last`` tick and ``final`` flag, read from its header alone
    (the rows are not decoded). Raises :class:`ProtocolError`."""
    _, last, final = batch_head(data)
    return last, final


def batch_head(data: bytes) -> tuple[bytes, int, bool]:
    """A batch's source replica id, ``last`` tick and ``final`` flag, read from
    its header alone. Raises :class:`ProtocolError`."""
    u = msgpack.Unpacker(raw=False, strict_map_key=True, ext_hook=_unpack_ext, max_buffer_size=len(data) or 1)
    u.feed(data)
    try:
        if u.read_array_header() != 12:
            raise ProtocolError("not a peersync batch")
        head = [u.unpack() for _ in range(9)]
    except ProtocolError:
        raise
    except Exception as exc:  # msgpack raises several unrelated types
        raise ProtocolError(f"malformed batch: {exc}") from exc
    source, last, final = head[3], head[7], head[8]
    if head[0] != MAGIC or not _is_int(last) or not isinstance(final, bool) or not isinstance(source, bytes):
        raise ProtocolError("not a peersync batch")
    return source, last, final


@dataclass(frozen=True)
class Envelope(BatchHead):
    """A batch's validated header, its rows still raw (for set-based apply)."""

    replicas: list[bytes]
    tables: list[tuple[str, int, list[Any]]]
    extras: list[Knowledge]


def unpack_envelope(data: bytes, schemas: Mapping[str, TableSchema]) -> Envelope:
    """Decode a batch and validate everything but the rows' contents.

    Rows are returned as decoded lists; :func:`decode_batch` validates them in
    Python, the SQLite adapter in SQL. Raises :class:`ProtocolError`.
    """
    try:
        with collector_paused():
            env = msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True, ext_hook=_unpack_ext)
    except Exception as exc:  # msgpack raises several unrelated types
        raise ProtocolError(f"malformed batch: {exc}") from exc
    if not isinstance(env, list) or len(env) != 12 or env[0] != MAGIC:
        raise ProtocolError("not a peersync batch")
    if not _is_int(env[1]) or env[1] != FORMAT:
        raise ProtocolError(f"unsupported batch format {env[1]!r}")
    _, _, scope, source, fingerprint, made_with, first, last, final, replicas, tables, extras = env
    if not isinstance(scope, str) or not isinstance(fingerprint, str):
        raise ProtocolError("malformed batch header")
    if not isinstance(source, bytes) or len(source) != REPLICA_ID_BYTES:
        raise ProtocolError("malformed batch: bad source replica id")
    if not (_is_int(first) and _is_int(last)) or first < 1 or last < first - 1 or last > _MAX_TICK:
        raise ProtocolError("malformed batch: bad tick range")
    if not isinstance(final, bool):
        raise ProtocolError("malformed batch: bad final flag")
    if (
        not isinstance(replicas, list)
        or not replicas
        or replicas[0] != source
        or any(not isinstance(r, bytes) or len(r) != REPLICA_ID_BYTES for r in replicas)
    ):
        raise ProtocolError("malformed batch: bad replica table")
    knowledge = Knowledge.from_wire(made_with)
    if not isinstance(extras, list):
        raise ProtocolError("malformed batch: bad extra knowledge")
    extra = [Knowledge.from_wire(k) for k in extras]
    if not isinstance(tables, list):
        raise ProtocolError("malformed batch: bad table list")
    out: list[tuple[str, int, list[Any]]] = []
    seen: set[str] = set()
    for entry in tables:
        if not isinstance(entry, list) or len(entry) != 3 or not isinstance(entry[0], str):
            raise ProtocolError("malformed batch: bad table entry")
        name, base_time, rows = entry
        if name not in schemas:
            raise ProtocolError(f"batch names table {name!r}, which is not in scope {scope!r}")
        # The base time reaches SQL, whose integers have 64 bits: a larger one
        # would fail there, not here (found by tests/http/test_fuzz.py).
        if name in seen or not isinstance(rows, list) or not _is_int(base_time) or not _I64[0] <= base_time <= _I64[1]:
            raise ProtocolError(f"malformed batch: bad rows for {name!r}")
        seen.add(name)
        out.append((name, base_time, rows))
    return Envelope(scope, source, fingerprint, knowledge, first, last, final, replicas, out, extra)


def open_batch(data: bytes, scope: str, schemas: Mapping[str, TableSchema], fingerprint: str, own: bytes) -> Envelope:
    """A batch's envelope, after the checks every destination makes before
    applying it to its replica ``own`` of ``scope`` (shape ``fingerprint``):
    the scope, the shape, a source other than itself, and a tick range the
    source's own knowledge vouches for. Raises :class:`ProtocolError`, or
    :class:`~peersync.SchemaMismatch` for another shape."""
    env = unpack_envelope(data, schemas)
    if env.scope != scope:
        raise ProtocolError(f"batch is for scope {env.scope!r}, not {scope!r}")
    if env.fingerprint != fingerprint:
        raise SchemaMismatch(f"batch for scope {scope!r} has shape {env.fingerprint}, this peer {fingerprint}")
    if env.source == own:
        raise ProtocolError("batch claims to come from this very replica")
    if env.last >= env.first and not env.made_with.contains_knowledge(
        Knowledge.from_ranges({env.source: [(env.first, env.last)]})
    ):
        raise ProtocolError("batch covers source ticks beyond the source's own knowledge")
    return env


def decode_batch(data: bytes, schemas: Mapping[str, TableSchema]) -> Batch:
    """Decode and fully validate a batch against the destination's table shapes."""
    env = unpack_envelope(data, schemas)
    replicas, nrep = env.replicas, len(env.replicas)
    changes: dict[str, list[Change]] = {}
    extra_of: dict[str, list[int]] = {}
    for name, base_time, rows in env.tables:
        schema = schemas[name]
        extra_of[name] = marks = []
        ncols = len(schema.columns)
        nonkey = [i for i in range(ncols) if i not in schema.key_positions]
        out: list[Change] = []
        prev = first0 = env.first - 1
        for row in rows:
            if not isinstance(row, list) or len(row) not in (2 + ncols, 7 + ncols):
                raise ProtocolError(f"batch row for {name!r} does not have {ncols} values")
            if len(row) == 2 + ncols:  # the short form
                row = [row[0], 0, 0, None, None, None, *row[1:]]
            dlt, flags, vrep, vtick, crep, ctick, dtime = row[:7]
            values = tuple(row[7:])
            if not (
                _is_int(dlt)
                and dlt >= 1
                and _is_int(flags)
                and flags >= 0
                and flags >> 1 <= len(env.extras)
                and _is_int(vrep)
                and 0 <= vrep < nrep
            ):
                raise ProtocolError(f"malformed batch: bad row header in {name!r}")
            lt = first0 + dlt
            if lt <= prev:
                raise ProtocolError(f"malformed batch: ticks of {name!r} out of order")
            if lt > env.last:
                raise ProtocolError(f"malformed batch: tick {lt} outside {env.first}..{env.last}")
            if not _is_int(dtime):
                raise ProtocolError("malformed batch: bad change time")
            prev = lt
            deleted = flags & 1 == 1
            if vtick is None:
                if vrep != 0:
                    raise ProtocolError("malformed batch: implicit tick on a foreign version")
                vtick = lt
            elif not _is_int(vtick) or vtick < 1:
                raise ProtocolError("malformed batch: bad version tick")
            version: Version = (replicas[vrep], vtick)
            if crep is None and ctick is None:
                creation = version
            elif _is_int(crep) and 0 <= crep < nrep and _is_int(ctick) and ctick >= 1:
                creation = (replicas[crep], ctick)
            else:
                raise ProtocolError("malformed batch: bad creation version")
            # The source holds this row, so it knows the row's version (not
            # always its creation: that may have come in an unfinished session).
            if version not in env.made_with and not (flags >> 1 and version in env.extras[(flags >> 1) - 1]):
                raise ProtocolError("malformed batch: a row's version is not in the source's knowledge")
            for v in values:
                if not isinstance(v, _VALUE_TYPES) or isinstance(v, bool):
                    raise ProtocolError(f"malformed batch: unsupported value type {type(v).__name__}")
            if deleted:
                if any(values[i] is not None for i in nonkey):
                    raise ProtocolError("malformed batch: a tombstone carries values")
                values = tuple(values[i] for i in schema.key_positions)
            out.append((lt, deleted, version, creation, base_time + dtime, values))
            marks.append(flags >> 1)
        changes[name] = out
    return Batch(
        env.scope, env.source, env.fingerprint, env.made_with, env.first, env.last, env.final, changes,
        tuple(env.extras), {name: m for name, m in extra_of.items() if any(m)},
    )  # fmt: skip


_MAX_TICK = 2**63 - 1
_I64 = (-(2**63), 2**63 - 1)


def _is_int(v: object) -> bool:
    return type(v) is int
