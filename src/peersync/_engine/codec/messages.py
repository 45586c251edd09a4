"""The messages of the Peer contract: one :class:`Message` each, which
encodes a value and decodes it again, strictly (the formats are in the
package docstring)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgpack

from ..errors import ConfigurationError, ProtocolError, SyncError, error_from_wire, error_to_wire
from ..knowledge import Knowledge
from ..model import (
    ApplyReport,
    Conflict,
    ConflictHandler,
    Policy,
    RawText,
    ReplicaInfo,
    SessionEnd,
    Status,
    TableSchema,
)
from ..wire import EXT_RAW_TEXT
from .fields import (
    DEFAULT_MAX_SIZE,
    FORMAT,
    Invalid,
    Map,
    _array,
    _bool,
    _build,
    _count,
    _enum,
    _fields,
    _knowledge,
    _limit,
    _Spec,
    _str,
    _tick,
)  # fmt: skip
from .structs import (
    _CONFLICT_FIELDS,
    _HEAD,
    _conflict_from,
    _conflict_to,
    _conflicts_from,
    _schema_from,
    _schema_to,
    _status_from,
    _status_to,
    _tables_from,
)  # fmt: skip

T = TypeVar("T")
_SESSION = re.compile(r"[0-9a-f]{32}")
_POLICIES = [p.value for p in Policy]


@dataclass(frozen=True)
class Message(Generic[T]):
    """One kind of message: its name, how many fields follow the kind and
    the format version, how a value becomes those fields (``to``) and how
    checked fields become a value again (``build``).

    >>> KNOWLEDGE.decode(KNOWLEDGE.encode(Knowledge())) == Knowledge()
    True
    """

    name: str
    fields: int
    to: Callable[[T], list[Any]]
    build: Callable[[list[Any]], T]

    def encode(self, value: T) -> bytes:
        """``value`` packed, after checking its fields as the decoder would,
        so what one side encodes the other decodes. Raises
        :class:`~peersync.ProtocolError` for a value that cannot travel."""
        try:
            body = self.to(value)
            self.build(body)
            out: bytes = msgpack.packb([self.name, FORMAT, *body], use_bin_type=True, default=_pack_ext)
        except Invalid as exc:
            raise ProtocolError(f"cannot encode {self.name}: {exc}") from None
        return out

    def decode(self, data: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> T:
        """The value in ``data``. Raises :class:`~peersync.ProtocolError`
        with a one-line reason for anything but exactly one such message of
        at most ``max_size`` bytes (see the package docstring)."""
        if type(data) is not bytes:
            raise ProtocolError(f"malformed {self.name}: expected bytes, not {type(data).__name__}")
        if len(data) > max_size:
            raise ProtocolError(f"{self.name} of {len(data)} bytes exceeds the limit of {max_size}")
        try:
            try:
                msg = msgpack.unpackb(
                    data, raw=False, strict_map_key=False, use_list=True, ext_hook=_unpack_ext, object_pairs_hook=Map
                )
            except msgpack.ExtraData:
                raise Invalid("trailing bytes after the message") from None
            except Invalid:
                raise
            except Exception as exc:  # msgpack raises several unrelated types (ValueError, UnicodeDecodeError, ...)
                raise Invalid(f"truncated or not msgpack ({type(exc).__name__}: {exc})") from None
            head = _array(msg, "the message")
            if len(head) < 2 or head[0] != self.name:
                raise Invalid(f"not a {self.name} message")
            if type(head[1]) is not int or head[1] != FORMAT:
                raise Invalid(f"unsupported format {head[1]!r} (this side reads {FORMAT})")
            return self.build(_fields(head[2:], "the message body", self.fields))
        except Invalid as exc:
            raise ProtocolError(f"malformed {self.name}: {exc}") from None


def _pack_ext(v: object) -> msgpack.ExtType:
    if type(v) is RawText:
        return msgpack.ExtType(EXT_RAW_TEXT, v.data)
    raise Invalid(f"a value of type {type(v).__name__} cannot travel")  # unreachable after the checks


def _unpack_ext(code: int, data: bytes) -> RawText:
    if code != EXT_RAW_TEXT:
        raise Invalid(f"unknown msgpack extension type {code}")
    return RawText(data)


KNOWLEDGE: Message[Knowledge] = Message(
    "knowledge", 1, lambda k: [k.to_wire()], lambda b: _knowledge(b[0], "knowledge")
)
TABLE_SCHEMA: Message[TableSchema] = Message("table-schema", 5, _schema_to, _schema_from)


def _schemas_to(schemas: dict[str, TableSchema]) -> list[Any]:
    for name, s in schemas.items():
        if name != s.name:
            raise ProtocolError(f"cannot encode schemas: entry {name!r} holds table {s.name!r}")
    return [[_schema_to(s) for s in schemas.values()]]


# The result of Peer.schemas; each key must be its table's name.
SCHEMAS: Message[dict[str, TableSchema]] = Message(
    "schemas", 1, _schemas_to, lambda b: {s.name: s for s in _tables_from(b[0], "tables")}
)


def _replica_info_to(info: ReplicaInfo) -> list[Any]:
    return [
        info.scope, info.replica_id, info.tick, info.knowledge.to_wire(), info.forgotten.to_wire(),
        info.fingerprint, [_schema_to(s) for s in info.tables],
    ]  # fmt: skip


_REPLICA_INFO_FIELDS: _Spec = (*_HEAD, ("tables", _tables_from, "tables"))
REPLICA_INFO: Message[ReplicaInfo] = Message(
    "replica-info", 7, _replica_info_to, lambda b: _build(ReplicaInfo, _REPLICA_INFO_FIELDS, b)
)
CONFLICT: Message[Conflict] = Message("conflict", len(_CONFLICT_FIELDS), _conflict_to, _conflict_from)


def _apply_report_to(r: ApplyReport) -> list[Any]:
    return [
        r.received, r.applied, r.skipped_known, r.conflicts, r.deferred, [_conflict_to(c) for c in r.failed],
        r.excluded.to_wire(), r.knowledge.to_wire(), r.last, r.final, r.made_with.to_wire(),
    ]  # fmt: skip


_APPLY_REPORT_FIELDS: _Spec = tuple(
    (name, read, name)
    for name, read in (
        ("received", _count), ("applied", _count), ("skipped_known", _count), ("conflicts", _count),
        ("deferred", _count), ("failed", _conflicts_from), ("excluded", _knowledge), ("knowledge", _knowledge),
        ("last", _tick), ("final", _bool), ("made_with", _knowledge),
    )
)  # fmt: skip
APPLY_REPORT: Message[ApplyReport] = Message(
    "apply-report", 11, _apply_report_to, lambda b: _build(ApplyReport, _APPLY_REPORT_FIELDS, b)
)


def _session_id(v: object, what: str) -> str:
    if not _SESSION.fullmatch(_str(v, what)):
        raise Invalid(f"{what} must be 32 lowercase hex digits")
    return str(v)


_SESSION_END_FIELDS: _Spec = (
    ("session", _session_id, "session"), ("merge", _knowledge, "merge"), ("excluded", _knowledge, "excluded"),
    ("failures", lambda v, what: tuple(_conflicts_from(v, what)), "failures"),
)  # fmt: skip
SESSION_END: Message[SessionEnd] = Message(
    "session-end",
    4,
    lambda end: [end.session, end.merge.to_wire(), end.excluded.to_wire(), [_conflict_to(c) for c in end.failures]],
    lambda b: _build(SessionEnd, _SESSION_END_FIELDS, b),
)
POLICY: Message[Policy] = Message("policy", 1, lambda p: [p.value], lambda b: _enum(Policy, b[0], "policy", _POLICIES))


def encode_policy(policy: ConflictHandler) -> bytes:
    """The ``policy`` argument of :meth:`Peer.apply`, which travels by name
    (:data:`POLICY`).

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
    return POLICY.encode(policy)


@dataclass(frozen=True)
class ChangesRequest:
    """The arguments of :meth:`Peer.changes` and :meth:`Peer.batches` but the scope."""

    known: Knowledge
    after: int
    upto: int
    max_rows: int
    max_bytes: int


_CHANGES_REQUEST_FIELDS: _Spec = (
    ("known", _knowledge, "known"), ("after", _tick, "after"), ("upto", _tick, "upto"),
    ("max_rows", _limit, "max_rows"), ("max_bytes", _limit, "max_bytes"),
)  # fmt: skip
CHANGES_REQUEST: Message[ChangesRequest] = Message(
    "changes-request",
    5,
    lambda req: [req.known.to_wire(), req.after, req.upto, req.max_rows, req.max_bytes],
    lambda b: _build(ChangesRequest, _CHANGES_REQUEST_FIELDS, b),
)


def _error_to(exc: SyncError) -> list[Any]:
    wire = error_to_wire(exc)
    return [wire["code"], wire["message"]]


def _error_from(b: list[Any]) -> SyncError:
    code, message = b
    return error_from_wire({"code": _str(code, "code"), "message": _str(message, "message")})


# An exception by its stable code and message (peersync._engine.errors): decoding
# gives the sender's class, or a ProtocolError for an unknown code.
ERROR: Message[SyncError] = Message("error", 2, _error_to, _error_from)
# The result of Database.status.
STATUSES: Message[list[Status]] = Message(
    "statuses",
    1,
    lambda statuses: [[_status_to(st) for st in statuses]],
    lambda b: [_status_from(v, "status") for v in _array(b[0], "statuses")],
)
# The result of Database.conflicts.
CONFLICTS: Message[list[Conflict]] = Message(
    "conflicts",
    1,
    lambda conflicts: [[_conflict_to(c) for c in conflicts]],
    lambda b: _conflicts_from(b[0], "conflicts"),
)
