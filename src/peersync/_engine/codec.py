"""Strict codecs for every argument and result of the Peer contract, so each
call can cross a wire (batches themselves are :mod:`.wire`'s).

Every message is one msgpack array that starts with its kind and the format
version, then its fields in a fixed order (plain msgpack types only; a TEXT
value that is not UTF-8 is ext type 1, as in a batch)::

    ["knowledge", 1, K]
    ["table-schema", 1, *S]
    ["schemas", 1, [S, ...]]                  the result of Peer.schemas
    ["replica-info", 1, scope, replica_id, tick, knowledge K, forgotten K, fingerprint, [S, ...]]
    ["conflict", 1, *C]
    ["apply-report", 1, received, applied, skipped_known, conflicts, deferred, [C, ...],
                        excluded K, knowledge K, last, final, made_with K]
    ["session-end", 1, session, merge K, excluded K, [C, ...]]
    ["policy", 1, name]                       a Policy's value, e.g. "source-wins"
    ["changes-request", 1, known K, after, upto, max_rows, max_bytes]
    ["error", 1, code, message]               see peersync._engine.errors
    ["statuses", 1, [T, ...]]                 the result of Database.status
    ["conflicts", 1, [C, ...]]                the result of Database.conflicts

    T = [scope, replica_id, tick, knowledge K, forgotten K, fingerprint, [table, ...],
         tracked_rows, tombstones, conflicts, pending]

    K = Knowledge.to_wire()
    S = [name, [column, ...], [key column, ...], [type, ...], [D, ...]]
    D = [column, value type, nullable, length, precision, scale, declared]
    C = [scope, table, [key value, ...], type, local_row R, remote_row R, local_version V,
         remote_version V, local_time, remote_time, policy, outcome, detail, id, logged_at]
    R = nil | [[column, ...], [value, ...]]   V = nil | [replica_id, tick]

Enums travel by value (``"update/update"``, ``"source-wins"``); replica ids
are 16-byte bin; ticks are integers in 0..2**63-1 (a version's tick from 1),
times and column values 64-bit signed integers, row limits 1..2**63-1.
Optional fields are nil when absent. A table's column descriptors ``D``
(:class:`~peersync._engine.types.Column`) are either empty (a table known by
name only) or name its columns in order; the value type is one of
:class:`~peersync._engine.types.ValueType`'s values and the sizes are nil or
integers in 0..2**31-1. The scope of each call is the
transport's business (e.g. the URL path), not a field here.

Decoding is strict: any truncated input, trailing byte, input longer than
``max_size``, wrong type (a bool is not an int, a map is never expected),
missing or extra field, out-of-range integer, replica id that is not 16
bytes, unknown enum value, unknown kind or version raises
:class:`~peersync.ProtocolError` with a one-line reason, and nothing else
escapes. Encoding checks the same rules, so what one side encodes the other
decodes; it raises :class:`~peersync.ProtocolError` for a value that cannot
travel, and :class:`~peersync.ConfigurationError` for a conflict callback.

A pass of :meth:`Peer.batches` travels as a stream (:func:`encode_batch_stream`):
``["batch-stream", 1]``, one bin per batch, then nil, so a stream cut short
is told apart from one that ended.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any, NoReturn, TypeVar

import msgpack

from .errors import ConfigurationError, ProtocolError, SyncError, error_from_wire, error_to_wire
from .knowledge import REPLICA_ID_BYTES, Knowledge, Version
from .model import (
    ApplyReport,
    Conflict,
    ConflictHandler,
    ConflictType,
    Outcome,
    Policy,
    RawText,
    ReplicaInfo,
    SessionEnd,
    Status,
    TableSchema,
    Value,
)
from .names import Names
from .types import Column, ValueType
from .wire import EXT_RAW_TEXT

FORMAT = 1
DEFAULT_MAX_SIZE = 64 * 1024 * 1024  # bytes; a message (or one streamed batch) larger is refused
MAX_TICK = 2**63 - 1
MIN_INT, MAX_INT = -(2**63), 2**63 - 1
MAX_SIZE_PARAM = 2**31 - 1  # a column's declared length, precision or scale
_SESSION = re.compile(r"[0-9a-f]{32}")
_SCALARS = (type(None), int, float, str, bytes, RawText)
T = TypeVar("T")


@dataclass(frozen=True)
class ChangesRequest:
    """The arguments of :meth:`Peer.changes` and :meth:`Peer.batches` but the scope."""

    known: Knowledge
    after: int
    upto: int
    max_rows: int
    max_bytes: int


class _Invalid(Exception):
    """A field breaks the format; the caller words it as a decode or encode error."""


class _Map:
    """A msgpack map as decoded: kept apart from every type a field may have."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[Any, Any]]) -> None:
        self.pairs = pairs


def _bad(what: str, v: object, expected: str) -> NoReturn:
    raise _Invalid(f"{what} must be {expected}, not {_type_name(v)}")


def _type_name(v: object) -> str:
    names = {type(None): "nil", list: "an array", _Map: "a map", bool: "a bool", bytes: "bin", str: "a string"}
    return names.get(type(v), type(v).__name__)


# -- field readers: each checks one field of decoded msgpack and returns it typed --


def _fields(v: object, what: str, n: int) -> list[Any]:
    if type(v) is not list:
        _bad(what, v, "an array")
    if len(v) != n:
        raise _Invalid(f"{what} has {len(v)} fields, expected {n}")
    return v


def _array(v: object, what: str) -> list[Any]:
    if type(v) is not list:
        _bad(what, v, "an array")
    return v


def _int(v: object, what: str, lo: int, hi: int) -> int:
    if type(v) is not int:
        _bad(what, v, "an integer")
    if not lo <= v <= hi:
        raise _Invalid(f"{what} {v} is outside {lo}..{hi}")
    return v


def _opt_int(v: object, what: str, lo: int, hi: int) -> int | None:
    return None if v is None else _int(v, what, lo, hi)


def _str(v: object, what: str) -> str:
    if type(v) is not str:
        _bad(what, v, "a string")
    return v


def _bool(v: object, what: str) -> bool:
    if type(v) is not bool:
        _bad(what, v, "a bool")
    return v


def _replica(v: object, what: str) -> bytes:
    if type(v) is not bytes:
        _bad(what, v, "bin")
    if len(v) != REPLICA_ID_BYTES:
        raise _Invalid(f"{what} is {len(v)} bytes, expected {REPLICA_ID_BYTES}")
    return v


def _value(v: object, what: str) -> Value:
    if type(v) not in _SCALARS:
        _bad(what, v, "nil, an integer, a float, a string, bin or raw text")
    if type(v) is int and not MIN_INT <= v <= MAX_INT:
        raise _Invalid(f"{what} {v} is outside the 64-bit range")
    return v


def _knowledge(v: object, what: str) -> Knowledge:
    try:
        return Knowledge.from_wire(v)
    except ProtocolError as exc:
        raise _Invalid(f"{what}: {exc}") from None


def _enum(cls: Callable[[str], T], v: object, what: str, names: Iterable[str]) -> T:
    s = _str(v, what)
    if s not in names:
        raise _Invalid(f"{what} {s!r} is not one of {', '.join(names)}")
    return cls(s)


def _names(v: object, what: str, nonempty: bool = True) -> tuple[str, ...]:
    out = tuple(_str(x, f"{what} entry") for x in _array(v, what))
    if nonempty and not out:
        raise _Invalid(f"{what} is empty")
    if len(set(out)) != len(out):
        raise _Invalid(f"{what} names one column twice")
    return out


def _size(v: object, what: str) -> int | None:
    return _opt_int(v, what, 0, MAX_SIZE_PARAM)


def _time(v: object, what: str) -> int:
    return _int(v, what, MIN_INT, MAX_INT)


def _opt_time(v: object, what: str) -> int | None:
    return _opt_int(v, what, MIN_INT, MAX_INT)


def _count(v: object, what: str) -> int:
    return _int(v, what, 0, MAX_INT)


def _tick(v: object, what: str) -> int:
    return _int(v, what, 0, MAX_TICK)


def _limit(v: object, what: str) -> int:
    return _int(v, what, 1, MAX_INT)


def _one_of(cls: Callable[[str], T], names: list[str]) -> Callable[[object, str], T]:
    """A reader of an enum field that travels by value."""
    return lambda v, what: _enum(cls, v, what, names)


# A structure's fields in wire order: (attribute, reader, how a message names it).
_Spec = tuple[tuple[str, Callable[[Any, str], Any], str], ...]


def _build(cls: Callable[..., T], spec: _Spec, values: list[Any], what: str = "") -> T:
    """``cls`` from ``values``, each checked by its field's reader; a message
    names a field by its label, after ``what`` when given."""
    prefix = f"{what} " if what else ""
    return cls(**{attr: read(v, prefix + label) for (attr, read, label), v in zip(spec, values, strict=True)})


# -- one pair per structure: to plain msgpack data, and back (checked) --


def _schema_to(s: TableSchema) -> list[Any]:
    specs = [[c.name, c.type.value, c.nullable, c.length, c.precision, c.scale, c.declared] for c in s.specs]
    return [s.name, list(s.columns), list(s.key), list(s.types), specs]


_VALUE_TYPES = [t.value for t in ValueType]


_COLUMN_FIELDS: _Spec = (
    ("name", _str, "name"), ("type", _one_of(ValueType, _VALUE_TYPES), "type"), ("nullable", _bool, "nullable"),
    ("length", _size, "length"), ("precision", _size, "precision"), ("scale", _size, "scale"),
    ("declared", _str, "declared type"),
)  # fmt: skip


def _spec_from(v: object, what: str) -> Column:
    return _build(Column, _COLUMN_FIELDS, _fields(v, what, len(_COLUMN_FIELDS)), what)


def _schema_from(v: object, what: str = "table schema") -> TableSchema:
    name, columns, key, types, specs = _fields(v, what, 5)
    name = _str(name, f"{what} name")
    cols = _names(columns, f"columns of {name!r}")
    keys = _names(key, f"key of {name!r}")
    if not set(keys) <= set(cols):
        raise _Invalid(f"key of {name!r} names a column the table lacks")
    # The type vocabulary grows (docs: type vocabulary); its names are checked where they are used.
    kinds = tuple(_str(t, f"type of a column of {name!r}") for t in _array(types, f"types of {name!r}"))
    if len(kinds) != len(cols):
        raise _Invalid(f"{name!r} has {len(cols)} columns but {len(kinds)} types")
    described = tuple(
        _spec_from(d, f"descriptor of a column of {name!r}") for d in _array(specs, f"descriptors of {name!r}")
    )
    if described and tuple(c.name for c in described) != cols:
        raise _Invalid(f"the column descriptors of {name!r} do not name its columns in order")
    return TableSchema(name, cols, keys, kinds, described)


def _tables_from(v: object, what: str) -> tuple[TableSchema, ...]:
    out = tuple(_schema_from(s) for s in _array(v, what))
    if len({s.name for s in out}) != len(out):
        raise _Invalid(f"{what} names one table twice")
    return out


def _row_to(row: dict[str, Value] | None) -> list[Any] | None:
    return None if row is None else [list(row), list(row.values())]


def _row_from(v: object, what: str) -> dict[str, Value] | None:
    if v is None:
        return None
    names, values = _fields(v, what, 2)
    cols = _names(names, f"{what} columns", nonempty=False)
    vals = _array(values, f"{what} values")
    if len(vals) != len(cols):
        raise _Invalid(f"{what} has {len(cols)} columns but {len(vals)} values")
    return {c: _value(x, f"{what} value of {c!r}") for c, x in zip(cols, vals, strict=True)}


def _version_to(v: Version | None) -> list[Any] | None:
    return None if v is None else [v[0], v[1]]


def _version_from(v: object, what: str) -> Version | None:
    if v is None:
        return None
    rid, tick = _fields(v, what, 2)
    return _replica(rid, f"{what} replica"), _int(tick, f"{what} tick", 1, MAX_TICK)


_CONFLICT_TYPES = [t.value for t in ConflictType]
_OUTCOMES = [o.value for o in Outcome]
_POLICIES = [p.value for p in Policy]


def _conflict_to(c: Conflict) -> list[Any]:
    return [
        c.scope, c.table, list(c.key), c.type.value, _row_to(c.local_row), _row_to(c.remote_row),
        _version_to(c.local_version), _version_to(c.remote_version), c.local_time, c.remote_time,
        c.policy, None if c.outcome is None else c.outcome.value, c.detail, c.id, c.logged_at,
    ]  # fmt: skip


def _key_from(v: object, what: str) -> tuple[Value, ...]:
    keys = tuple(_value(x, f"{what} value") for x in _array(v, what))
    if not keys:
        raise _Invalid(f"{what} is empty")
    return keys


def _remote_version_from(v: object, what: str) -> Version:
    version = _version_from(v, what)
    if version is None:
        _bad(what, v, "a version")
    return version


def _outcome_from(v: object, what: str) -> Outcome | None:
    return None if v is None else _enum(Outcome, v, what, _OUTCOMES)


_CONFLICT_FIELDS: _Spec = (
    ("scope", _str, "scope"), ("table", _str, "table"), ("key", _key_from, "key"),
    ("type", _one_of(ConflictType, _CONFLICT_TYPES), "type"), ("local_row", _row_from, "local row"),
    ("remote_row", _row_from, "remote row"), ("local_version", _version_from, "local version"),
    ("remote_version", _remote_version_from, "remote version"), ("local_time", _opt_time, "local time"),
    ("remote_time", _time, "remote time"), ("policy", _str, "policy"), ("outcome", _outcome_from, "outcome"),
    ("detail", _str, "detail"), ("id", _opt_time, "id"), ("logged_at", _opt_time, "logging time"),
)  # fmt: skip


def _conflict_from(v: object, what: str = "conflict") -> Conflict:
    return _build(Conflict, _CONFLICT_FIELDS, _fields(v, what, len(_CONFLICT_FIELDS)), what)


def _conflicts_from(v: object, what: str) -> list[Conflict]:
    return [_conflict_from(c, f"{what} entry") for c in _array(v, what)]


# -- the messages ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Kind:
    name: str
    fields: int  # after kind and format


def _pack_ext(v: object) -> msgpack.ExtType:
    if type(v) is RawText:
        return msgpack.ExtType(EXT_RAW_TEXT, v.data)
    raise _Invalid(f"a value of type {type(v).__name__} cannot travel")  # unreachable after the checks


def _unpack_ext(code: int, data: bytes) -> RawText:
    if code != EXT_RAW_TEXT:
        raise _Invalid(f"unknown msgpack extension type {code}")
    return RawText(data)


def _encode(kind: _Kind, body: list[Any], check: Callable[[list[Any]], object]) -> bytes:
    """Pack ``body`` after checking it as the decoder would, so what encodes decodes."""
    try:
        check(body)
        out: bytes = msgpack.packb([kind.name, FORMAT, *body], use_bin_type=True, default=_pack_ext)
    except _Invalid as exc:
        raise ProtocolError(f"cannot encode {kind.name}: {exc}") from None
    return out


def _decode(kind: _Kind, data: bytes, max_size: int, build: Callable[[list[Any]], T]) -> T:
    if type(data) is not bytes:
        raise ProtocolError(f"malformed {kind.name}: expected bytes, not {type(data).__name__}")
    if len(data) > max_size:
        raise ProtocolError(f"{kind.name} of {len(data)} bytes exceeds the limit of {max_size}")
    try:
        try:
            msg = msgpack.unpackb(
                data, raw=False, strict_map_key=False, use_list=True, ext_hook=_unpack_ext, object_pairs_hook=_Map
            )
        except msgpack.ExtraData:
            raise _Invalid("trailing bytes after the message") from None
        except _Invalid:
            raise
        except Exception as exc:  # msgpack raises several unrelated types (ValueError, UnicodeDecodeError, ...)
            raise _Invalid(f"truncated or not msgpack ({type(exc).__name__}: {exc})") from None
        head = _array(msg, "the message")
        if len(head) < 2 or head[0] != kind.name:
            raise _Invalid(f"not a {kind.name} message")
        if type(head[1]) is not int or head[1] != FORMAT:
            raise _Invalid(f"unsupported format {head[1]!r} (this side reads {FORMAT})")
        body = _fields(head[2:], "the message body", kind.fields)
        return build(body)
    except _Invalid as exc:
        raise ProtocolError(f"malformed {kind.name}: {exc}") from None


_KNOWLEDGE = _Kind("knowledge", 1)


def encode_knowledge(k: Knowledge) -> bytes:
    return _encode(_KNOWLEDGE, [k.to_wire()], _knowledge_body)


def decode_knowledge(data: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> Knowledge:
    return _decode(_KNOWLEDGE, data, max_size, _knowledge_body)


def _knowledge_body(b: list[Any]) -> Knowledge:
    return _knowledge(b[0], "knowledge")


_TABLE_SCHEMA = _Kind("table-schema", 5)


def encode_table_schema(s: TableSchema) -> bytes:
    return _encode(_TABLE_SCHEMA, _schema_to(s), _schema_from)


def decode_table_schema(data: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> TableSchema:
    return _decode(_TABLE_SCHEMA, data, max_size, _schema_from)


_SCHEMAS = _Kind("schemas", 1)


def encode_schemas(schemas: dict[str, TableSchema]) -> bytes:
    """The result of :meth:`Peer.schemas`; each key must be its table's name."""
    for name, s in schemas.items():
        if name != s.name:
            raise ProtocolError(f"cannot encode schemas: entry {name!r} holds table {s.name!r}")
    return _encode(_SCHEMAS, [[_schema_to(s) for s in schemas.values()]], _schemas_body)


def decode_schemas(data: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> dict[str, TableSchema]:
    return _decode(_SCHEMAS, data, max_size, _schemas_body)


def _schemas_body(b: list[Any]) -> dict[str, TableSchema]:
    return {s.name: s for s in _tables_from(b[0], "tables")}


_REPLICA_INFO = _Kind("replica-info", 7)


def encode_replica_info(info: ReplicaInfo) -> bytes:
    body = [
        info.scope, info.replica_id, info.tick, info.knowledge.to_wire(), info.forgotten.to_wire(),
        info.fingerprint, [_schema_to(s) for s in info.tables],
    ]  # fmt: skip
    return _encode(_REPLICA_INFO, body, _replica_info_body)


def decode_replica_info(data: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> ReplicaInfo:
    return _decode(_REPLICA_INFO, data, max_size, _replica_info_body)


# A replica's head, shared by replica info and status.
_HEAD: _Spec = (
    ("scope", _str, "scope"), ("replica_id", _replica, "replica id"), ("tick", _tick, "tick"),
    ("knowledge", _knowledge, "knowledge"), ("forgotten", _knowledge, "forgotten knowledge"),
    ("fingerprint", _str, "fingerprint"),
)  # fmt: skip
_REPLICA_INFO_FIELDS: _Spec = (*_HEAD, ("tables", _tables_from, "tables"))


def _replica_info_body(b: list[Any]) -> ReplicaInfo:
    return _build(ReplicaInfo, _REPLICA_INFO_FIELDS, b)


_CONFLICT = _Kind("conflict", 15)


def encode_conflict(c: Conflict) -> bytes:
    return _encode(_CONFLICT, _conflict_to(c), _conflict_from)


def decode_conflict(data: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> Conflict:
    return _decode(_CONFLICT, data, max_size, _conflict_from)


_APPLY_REPORT = _Kind("apply-report", 11)


def encode_apply_report(r: ApplyReport) -> bytes:
    body = [
        r.received, r.applied, r.skipped_known, r.conflicts, r.deferred, [_conflict_to(c) for c in r.failed],
        r.excluded.to_wire(), r.knowledge.to_wire(), r.last, r.final, r.made_with.to_wire(),
    ]  # fmt: skip
    return _encode(_APPLY_REPORT, body, _apply_report_body)


def decode_apply_report(data: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> ApplyReport:
    return _decode(_APPLY_REPORT, data, max_size, _apply_report_body)


_APPLY_REPORT_FIELDS: _Spec = tuple(
    (name, read, name)
    for name, read in (
        ("received", _count), ("applied", _count), ("skipped_known", _count), ("conflicts", _count),
        ("deferred", _count), ("failed", _conflicts_from), ("excluded", _knowledge), ("knowledge", _knowledge),
        ("last", _tick), ("final", _bool), ("made_with", _knowledge),
    )
)  # fmt: skip


def _apply_report_body(b: list[Any]) -> ApplyReport:
    return _build(ApplyReport, _APPLY_REPORT_FIELDS, b)


_SESSION_END = _Kind("session-end", 4)


def encode_session_end(end: SessionEnd) -> bytes:
    body = [end.session, end.merge.to_wire(), end.excluded.to_wire(), [_conflict_to(c) for c in end.failures]]
    return _encode(_SESSION_END, body, _session_end_body)


def decode_session_end(data: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> SessionEnd:
    return _decode(_SESSION_END, data, max_size, _session_end_body)


def _session_id(v: object, what: str) -> str:
    if not _SESSION.fullmatch(_str(v, what)):
        raise _Invalid(f"{what} must be 32 lowercase hex digits")
    return str(v)


_SESSION_END_FIELDS: _Spec = (
    ("session", _session_id, "session"), ("merge", _knowledge, "merge"), ("excluded", _knowledge, "excluded"),
    ("failures", lambda v, what: tuple(_conflicts_from(v, what)), "failures"),
)  # fmt: skip


def _session_end_body(b: list[Any]) -> SessionEnd:
    return _build(SessionEnd, _SESSION_END_FIELDS, b)


_POLICY = _Kind("policy", 1)


def encode_policy(policy: ConflictHandler) -> bytes:
    """The ``policy`` argument of :meth:`Peer.apply`, which travels by name.

    Raises :class:`~peersync.ConfigurationError` for a Python callback: it can
    only run where the destination database is, in this process.
    """
    if not isinstance(policy, Policy):
        if callable(policy):
            raise ConfigurationError(
                "a conflict callback runs only where the destination database is in this process;"
                f" for a remote peer name a policy ({', '.join(_POLICIES)})"
            )
        raise ConfigurationError(f"a conflict policy is a Policy, not {type(policy).__name__}")
    return _encode(_POLICY, [policy.value], _policy_body)


def decode_policy(data: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> Policy:
    return _decode(_POLICY, data, max_size, _policy_body)


def _policy_body(b: list[Any]) -> Policy:
    return _enum(Policy, b[0], "policy", _POLICIES)


_CHANGES_REQUEST = _Kind("changes-request", 5)


def encode_changes_request(req: ChangesRequest) -> bytes:
    body = [req.known.to_wire(), req.after, req.upto, req.max_rows, req.max_bytes]
    return _encode(_CHANGES_REQUEST, body, _changes_request_body)


def decode_changes_request(data: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> ChangesRequest:
    return _decode(_CHANGES_REQUEST, data, max_size, _changes_request_body)


_CHANGES_REQUEST_FIELDS: _Spec = (
    ("known", _knowledge, "known"), ("after", _tick, "after"), ("upto", _tick, "upto"),
    ("max_rows", _limit, "max_rows"), ("max_bytes", _limit, "max_bytes"),
)  # fmt: skip


def _changes_request_body(b: list[Any]) -> ChangesRequest:
    return _build(ChangesRequest, _CHANGES_REQUEST_FIELDS, b)


_ERROR = _Kind("error", 2)


def encode_error(exc: SyncError) -> bytes:
    """``exc`` by its stable code and message (:func:`~peersync._engine.errors.error_to_wire`)."""
    wire = error_to_wire(exc)
    return _encode(_ERROR, [wire["code"], wire["message"]], _error_body)


def decode_error(data: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> SyncError:
    """The exception to raise: the sender's class, or a :class:`~peersync.ProtocolError`
    for an unknown code. Raises :class:`~peersync.ProtocolError` for malformed input."""
    return _decode(_ERROR, data, max_size, _error_body)


def _error_body(b: list[Any]) -> SyncError:
    code, message = b
    return error_from_wire({"code": _str(code, "code"), "message": _str(message, "message")})


_STATUSES = _Kind("statuses", 1)


def _status_to(st: Status) -> list[Any]:
    return [
        st.scope, st.replica_id, st.tick, st.knowledge.to_wire(), st.forgotten.to_wire(), st.fingerprint,
        list(st.tables), st.tracked_rows, st.tombstones, st.conflicts, st.pending, *_names_to(st.names),
    ]  # fmt: skip


_STATUS_FIELDS: _Spec = (
    *_HEAD, ("tables", lambda v, what: _names(v, what, nonempty=False), "tables"),
    ("tracked_rows", _count, "tracked rows"), ("tombstones", _count, "tombstones"),
    ("conflicts", _count, "conflicts"), ("pending", _count, "pending"),
)  # fmt: skip


def _names_to(names: dict[str, Any]) -> list[str]:
    """A status's local names: one more field only when there are any (as
    JSON text), so statuses without them keep their fields as before."""
    return [json.dumps(names)] if names else []


def _names_from(v: object, what: str) -> dict[str, Any]:
    try:
        return Names.from_mapping(json.loads(_str(v, what)), what).to_mapping()
    except (ValueError, ConfigurationError) as exc:
        raise _Invalid(f"{what}: {exc}") from None


def _status_from(v: object, what: str = "status") -> Status:
    n = len(_STATUS_FIELDS)
    named = type(v) is list and len(v) == n + 1
    st = _build(Status, _STATUS_FIELDS, _fields(v[:n] if named else v, what, n), what)  # type: ignore[index]
    return replace(st, names=_names_from(v[n], f"{what} names")) if named else st  # type: ignore[index]


def encode_statuses(statuses: list[Status]) -> bytes:
    """The result of :meth:`Database.status`."""
    return _encode(_STATUSES, [[_status_to(st) for st in statuses]], _statuses_body)


def decode_statuses(data: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> list[Status]:
    return _decode(_STATUSES, data, max_size, _statuses_body)


def _statuses_body(b: list[Any]) -> list[Status]:
    return [_status_from(v, "status") for v in _array(b[0], "statuses")]


_CONFLICTS = _Kind("conflicts", 1)


def encode_conflicts(conflicts: list[Conflict]) -> bytes:
    """The result of :meth:`Database.conflicts`."""
    return _encode(_CONFLICTS, [[_conflict_to(c) for c in conflicts]], _conflicts_body)


def decode_conflicts(data: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> list[Conflict]:
    return _decode(_CONFLICTS, data, max_size, _conflicts_body)


def _conflicts_body(b: list[Any]) -> list[Conflict]:
    return _conflicts_from(b[0], "conflicts")


# -- a pass of batches as one stream ------------------------------------------------------

_STREAM = "batch-stream"
_END = b"\xc0"  # msgpack nil
_FEED = 64 * 1024  # bytes fed to the unpacker at a time, so its buffer stays near one batch


def encode_batch_stream(batches: Iterable[bytes]) -> Iterator[bytes]:
    """The frames of a stream of encoded batches, lazily (no batch is copied)."""
    yield msgpack.packb([_STREAM, FORMAT])
    for data in batches:
        n = len(data)
        if n < 2**8:
            yield b"\xc4" + n.to_bytes(1, "big")
        elif n < 2**16:
            yield b"\xc5" + n.to_bytes(2, "big")
        elif n < 2**32:
            yield b"\xc6" + n.to_bytes(4, "big")
        else:
            raise ProtocolError(f"cannot stream a batch of {n} bytes")
        yield data
    yield _END


def decode_batch_stream(chunks: Iterable[bytes], *, max_size: int = DEFAULT_MAX_SIZE) -> Iterator[bytes]:
    """The batches of a stream, each as soon as its last byte arrives.

    ``chunks`` may split the stream anywhere. Each batch is at most
    ``max_size`` bytes, and about that much is buffered at a time. Raises
    :class:`~peersync.ProtocolError` (after yielding the batches before it)
    for a bad header, an item that is not bin, an oversized batch, bytes after
    the end mark, or a stream that stops before its end mark. The batches
    themselves are not decoded here.
    """
    u = msgpack.Unpacker(raw=False, strict_map_key=False, object_pairs_hook=_Map, max_buffer_size=max_size + 2 * _FEED)
    state = "head"  # then "items", then "ended"
    fed = 0
    for chunk in chunks:
        if type(chunk) is not bytes:
            raise ProtocolError(f"malformed batch stream: a chunk is {type(chunk).__name__}, not bytes")
        for i in range(0, len(chunk), _FEED):
            if state == "ended":
                raise ProtocolError("malformed batch stream: bytes after its end mark")
            try:
                part = chunk[i : i + _FEED]
                u.feed(part)
                fed += len(part)
                items = _drain(u)
            except msgpack.BufferFull:
                raise ProtocolError(f"malformed batch stream: a batch exceeds the limit of {max_size} bytes") from None
            except Exception as exc:  # msgpack raises several unrelated types
                raise ProtocolError(f"malformed batch stream: not msgpack ({type(exc).__name__}: {exc})") from None
            for item, end in items:
                if state == "head":
                    if type(item) is not list or item[:1] != [_STREAM] or len(item) != 2:
                        raise ProtocolError("malformed batch stream: not a batch stream")
                    if type(item[1]) is not int or item[1] != FORMAT:
                        raise ProtocolError(f"malformed batch stream: unsupported format {item[1]!r}")
                    state = "items"
                elif item is None:
                    state = "ended"
                    if end != fed:
                        raise ProtocolError("malformed batch stream: bytes after its end mark")
                elif type(item) is not bytes:
                    raise ProtocolError(f"malformed batch stream: an item is {_type_name(item)}, not a batch")
                elif len(item) > max_size:
                    raise ProtocolError(f"malformed batch stream: a batch exceeds the limit of {max_size} bytes")
                else:
                    yield item
    if state != "ended":
        raise ProtocolError("malformed batch stream: it stops before its end mark")


def _drain(u: Any) -> list[tuple[Any, int]]:
    """The whole objects fed so far, each with the stream offset where it ends."""
    out: list[tuple[Any, int]] = []
    while True:
        try:
            item = u.unpack()
        except msgpack.OutOfData:
            return out
        out.append((item, u.tell()))
