"""The batch wire format: compact msgpack, validated strictly on the way in.

A batch is one msgpack array::

    ["peersync-batch", 1, scope, source_id, fingerprint, made_with,
     first, last, final, base_time, replicas, tables]

``replicas`` lists the replica ids the rows refer to (index 0 is the source);
``tables`` is ``[[name, [row, ...]], ...]`` and each row is::

    [tick_delta, flags, version_replica, version_tick | nil,
     creation_replica | nil, creation_tick | nil, time_delta, *values]

``tick_delta`` is the row's source tick minus the previous row's (or minus
``first - 1``); ``version_tick`` is nil when the version is the source's own
tick; a nil creation means "same as the version"; ``flags`` bit 0 marks a
tombstone, whose values are the key alone. Most rows thus carry about eight
bytes of metadata beyond their values.

:func:`decode_batch` refuses anything malformed, truncated or inconsistent
with :class:`~peersync.ProtocolError` and never returns a partial batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgpack

from ._errors import ProtocolError
from ._knowledge import REPLICA_ID_BYTES, Knowledge, Version
from ._model import Batch, Change, TableSchema

MAGIC = "peersync-batch"
FORMAT = 1
_VALUE_TYPES = (type(None), int, float, str, bytes)


def encode_batch(batch: Batch) -> bytes:
    source = batch.source
    replicas: dict[bytes, int] = {source: 0}
    base_time = max((c[4] for rows in batch.changes.values() for c in rows), default=0)
    tables: list[list[Any]] = []
    for name, rows in batch.changes.items():
        out: list[list[Any]] = []
        prev = batch.first - 1
        for lt, deleted, version, creation, ctime, values in rows:
            vrid, vtick = version
            vrep = replicas.setdefault(vrid, len(replicas))
            own = vrep == 0 and vtick == lt
            if creation == version:
                crep: int | None = None
                ctick: int | None = None
            else:
                crep = replicas.setdefault(creation[0], len(replicas))
                ctick = creation[1]
            out.append(
                [lt - prev, 1 if deleted else 0, vrep, None if own else vtick, crep, ctick, ctime - base_time, *values]
            )
            prev = lt
        tables.append([name, out])
    envelope = [
        MAGIC,
        FORMAT,
        batch.scope,
        source,
        batch.fingerprint,
        batch.made_with.to_wire(),
        batch.first,
        batch.last,
        batch.final,
        base_time,
        list(replicas),
        tables,
    ]
    data: bytes = msgpack.packb(envelope, use_bin_type=True)
    return data


def decode_batch(data: bytes, schemas: Mapping[str, TableSchema]) -> Batch:
    """Decode and validate a batch against the destination's table shapes."""
    try:
        env = msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)
    except Exception as exc:  # msgpack raises several unrelated types
        raise ProtocolError(f"malformed batch: {exc}") from exc
    try:
        return _decode(env, schemas)
    except ProtocolError:
        raise
    except (TypeError, ValueError, IndexError, KeyError) as exc:
        raise ProtocolError(f"malformed batch: {exc}") from exc


def _decode(env: Any, schemas: Mapping[str, TableSchema]) -> Batch:
    if not isinstance(env, list) or len(env) != 12 or env[0] != MAGIC:
        raise ProtocolError("not a peersync batch")
    if env[1] != FORMAT:
        raise ProtocolError(f"unsupported batch format {env[1]!r}")
    _, _, scope, source, fingerprint, made_with, first, last, final, base_time, replicas, tables = env
    if not isinstance(scope, str) or not isinstance(fingerprint, str):
        raise ProtocolError("malformed batch header")
    if not isinstance(source, bytes) or len(source) != REPLICA_ID_BYTES:
        raise ProtocolError("malformed batch: bad source replica id")
    if not (_is_int(first) and _is_int(last) and _is_int(base_time)) or first < 1 or last < first - 1:
        raise ProtocolError("malformed batch: bad tick range")
    if not isinstance(final, bool):
        raise ProtocolError("malformed batch: bad final flag")
    if (
        not isinstance(replicas, list)
        or not replicas
        or replicas[0] != source
        or any(not isinstance(r, bytes) or len(r) != REPLICA_ID_BYTES for r in replicas)
        or len(set(replicas)) != len(replicas)
    ):
        raise ProtocolError("malformed batch: bad replica table")
    knowledge = Knowledge.from_wire(made_with)
    if not isinstance(tables, list):
        raise ProtocolError("malformed batch: bad table list")
    changes: dict[str, list[Change]] = {}
    nrep = len(replicas)
    for entry in tables:
        if not isinstance(entry, list) or len(entry) != 2 or not isinstance(entry[0], str):
            raise ProtocolError("malformed batch: bad table entry")
        name, rows = entry
        schema = schemas.get(name)
        if schema is None:
            raise ProtocolError(f"batch names table {name!r}, which is not in scope {scope!r}")
        if name in changes or not isinstance(rows, list):
            raise ProtocolError(f"malformed batch: bad rows for {name!r}")
        ncols, nkey = len(schema.columns), len(schema.key)
        out: list[Change] = []
        prev = first - 1
        for row in rows:
            if not isinstance(row, list) or len(row) < 7:
                raise ProtocolError(f"malformed batch: short row in {name!r}")
            dlt, flags, vrep, vtick, crep, ctick, dtime = row[:7]
            values = tuple(row[7:])
            if not (_is_int(dlt) and dlt >= 1 and flags in (0, 1) and _is_int(vrep) and 0 <= vrep < nrep):
                raise ProtocolError(f"malformed batch: bad row header in {name!r}")
            lt = prev + dlt
            if lt > last:
                raise ProtocolError(f"malformed batch: tick {lt} outside {first}..{last}")
            prev = lt
            deleted = flags == 1
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
            if not _is_int(dtime):
                raise ProtocolError("malformed batch: bad change time")
            if len(values) != (nkey if deleted else ncols):
                raise ProtocolError(
                    f"batch row for {name!r} has {len(values)} values, expected {nkey if deleted else ncols}"
                )
            for v in values:
                if not isinstance(v, _VALUE_TYPES) or isinstance(v, bool):
                    raise ProtocolError(f"malformed batch: unsupported value type {type(v).__name__}")
            out.append((lt, deleted, version, creation, base_time + dtime, values))
        changes[name] = out
    return Batch(scope, source, fingerprint, knowledge, first, last, final, changes)


def _is_int(v: object) -> bool:
    return type(v) is int
