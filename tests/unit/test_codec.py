"""Codecs of the Peer contract: every message round-trips exactly, and bad input
is refused with ProtocolError (never a KeyError, TypeError or ValueError)."""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from peersync import ConfigurationError, Knowledge, ProtocolError, RawText, ScopeError
from peersync._engine import codec as C
from peersync._engine.model import (
    ApplyReport,
    Conflict,
    ConflictType,
    Outcome,
    Policy,
    ReplicaInfo,
    SessionEnd,
    Status,
    TableSchema,
)
from peersync._engine.types import Column, ValueType

I64 = (-(2**63), 2**63 - 1)
RID = st.binary(min_size=16, max_size=16)
KNOWLEDGE_TICK = 2**62 - 1  # Knowledge keeps range ends within 2**62
VALUES = st.one_of(
    st.none(),
    st.integers(*I64),
    st.sampled_from([*I64, 0, -1, 2**32, -(2**31) - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([float("nan"), float("inf"), float("-inf"), -0.0, 5e-324, 1.7976931348623157e308]),
    st.text(),
    st.binary(),
    st.builds(RawText, st.binary()),
)
NAME = st.text(max_size=12)


@st.composite
def knowledge(draw: st.DrawFn, max_replicas: int = 40) -> Knowledge:
    out: dict[bytes, list[tuple[int, int]]] = {}
    for rid in draw(st.lists(RID, max_size=max_replicas, unique=True)):
        bounds = sorted(draw(st.sets(st.integers(1, KNOWLEDGE_TICK), min_size=1, max_size=8)))
        out[rid] = [(lo, lo) for lo in bounds]
        if len(bounds) > 1 and draw(st.booleans()):  # a long clock-vector range too
            out[rid] = [(1, bounds[-1])]
    return Knowledge.from_ranges(out)


@st.composite
def schemas(draw: st.DrawFn) -> TableSchema:
    cols = draw(st.lists(NAME, min_size=1, max_size=6, unique=True))
    key = draw(st.lists(st.sampled_from(cols), min_size=1, unique=True))
    types = draw(st.lists(st.sampled_from(["integer", "real", "text", "blob", "numeric"]), min_size=len(cols)))
    specs: tuple[Column, ...] = ()
    if draw(st.booleans()):  # described columns, or a table known by name only
        specs = tuple(draw(columns(c)) for c in cols)
    return TableSchema(draw(NAME), tuple(cols), tuple(key), tuple(types[: len(cols)]), specs)


SIZES = st.none() | st.integers(0, 2**31 - 1)


def columns(name: str) -> st.SearchStrategy[Column]:
    return st.builds(
        Column,
        name=st.just(name),
        type=st.sampled_from(ValueType),
        nullable=st.booleans(),
        length=SIZES,
        precision=SIZES,
        scale=SIZES,
        declared=st.text(max_size=20),
    )


ROWS = st.none() | st.dictionaries(NAME, VALUES, max_size=6)
VERSIONS = st.tuples(RID, st.integers(1, 2**63 - 1))
OPT_I64 = st.none() | st.integers(*I64)

CONFLICTS = st.builds(
    Conflict,
    scope=NAME,
    table=NAME,
    key=st.lists(VALUES, min_size=1, max_size=3).map(tuple),
    type=st.sampled_from(ConflictType),
    local_row=ROWS,
    remote_row=ROWS,
    local_version=st.none() | VERSIONS,
    remote_version=VERSIONS,
    local_time=OPT_I64,
    remote_time=st.integers(*I64),
    policy=NAME,
    outcome=st.none() | st.sampled_from(Outcome),
    detail=st.text(),
    id=OPT_I64,
    logged_at=OPT_I64,
)
COUNTS = st.integers(0, 2**63 - 1)
TICKS = st.integers(0, 2**63 - 1)


@st.composite
def replica_infos(draw: st.DrawFn) -> ReplicaInfo:
    tables = draw(st.lists(schemas(), max_size=4, unique_by=lambda s: s.name))
    return ReplicaInfo(
        draw(NAME), draw(RID), draw(TICKS), draw(knowledge()), draw(knowledge()), draw(NAME), tuple(tables)
    )


APPLY_REPORTS = st.builds(
    ApplyReport,
    received=COUNTS,
    applied=COUNTS,
    skipped_known=COUNTS,
    conflicts=COUNTS,
    deferred=COUNTS,
    failed=st.lists(CONFLICTS, max_size=3),
    excluded=knowledge(),
    knowledge=knowledge(),
    last=TICKS,
    final=st.booleans(),
    made_with=knowledge(),
)
SESSION_ENDS = st.builds(
    SessionEnd,
    session=st.binary(min_size=16, max_size=16).map(bytes.hex),
    merge=knowledge(),
    excluded=knowledge(),
    failures=st.lists(CONFLICTS, max_size=3).map(tuple),
)
LIMITS = st.integers(1, 2**63 - 1)
CHANGES_REQUESTS = st.builds(
    C.ChangesRequest, known=knowledge(), after=TICKS, upto=TICKS, max_rows=LIMITS, max_bytes=LIMITS
)
STATUSES = st.builds(
    Status,
    scope=NAME,
    replica_id=RID,
    tick=TICKS,
    knowledge=knowledge(),
    forgotten=knowledge(),
    fingerprint=NAME,
    tables=st.lists(NAME, max_size=4, unique=True).map(tuple),
    tracked_rows=COUNTS,
    tombstones=COUNTS,
    conflicts=COUNTS,
    pending=COUNTS,
)
SCHEMA_MAPS = st.lists(schemas(), max_size=4, unique_by=lambda s: s.name).map(lambda ts: {t.name: t for t in ts})

Codec = tuple[Callable[[Any], bytes], Callable[..., Any]]
KINDS: dict[str, tuple[Codec, st.SearchStrategy[Any]]] = {
    "knowledge": ((C.KNOWLEDGE.encode, C.KNOWLEDGE.decode), knowledge()),
    "table-schema": ((C.TABLE_SCHEMA.encode, C.TABLE_SCHEMA.decode), schemas()),
    "schemas": ((C.SCHEMAS.encode, C.SCHEMAS.decode), SCHEMA_MAPS),
    "replica-info": ((C.REPLICA_INFO.encode, C.REPLICA_INFO.decode), replica_infos()),
    "conflict": ((C.CONFLICT.encode, C.CONFLICT.decode), CONFLICTS),
    "apply-report": ((C.APPLY_REPORT.encode, C.APPLY_REPORT.decode), APPLY_REPORTS),
    "session-end": ((C.SESSION_END.encode, C.SESSION_END.decode), SESSION_ENDS),
    "policy": ((C.encode_policy, C.POLICY.decode), st.sampled_from(Policy)),
    "changes-request": ((C.CHANGES_REQUEST.encode, C.CHANGES_REQUEST.decode), CHANGES_REQUESTS),
    "statuses": ((C.STATUSES.encode, C.STATUSES.decode), st.lists(STATUSES, max_size=3)),
    "conflicts": ((C.CONFLICTS.encode, C.CONFLICTS.decode), st.lists(CONFLICTS, max_size=3)),
}


def exact(v: Any) -> Any:
    """``v`` with every float replaced by its bits, so NaN equals NaN and -0.0 differs from 0.0."""
    if type(v) is float:
        return ("float", struct.pack(">d", v))
    if isinstance(v, tuple | list):
        return (type(v).__name__, [exact(x) for x in v])
    if isinstance(v, dict):
        return ("dict", [(k, exact(x)) for k, x in v.items()])  # order too
    if dataclasses.is_dataclass(v):
        return (type(v).__name__, [(f.name, exact(getattr(v, f.name))) for f in dataclasses.fields(v)])
    return (type(v).__name__, v)


# -- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
# Generating a knowledge or a schema is slow on a loaded machine; the health check then fails
# the test for the machine's load, not for the codec.
@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_message_round_trips_exactly(kind: str, data: st.DataObject) -> None:
    (encode, decode), values = KINDS[kind]
    value = data.draw(values)
    back = decode(encode(value))
    assert type(back) is type(value)
    assert exact(back) == exact(value)
    assert back == value or kind in ("conflict", "conflicts", "apply-report", "session-end")  # NaN != NaN


def test_extreme_values_survive_in_a_conflict() -> None:
    extremes = (None, *I64, float("nan"), float("inf"), float("-inf"), -0.0, "", "漢字🎉", b"", b"\x00\xff")
    row = {f"c{i}": v for i, v in enumerate(extremes)} | {"raw": RawText(b"\xff\xfe"), "empty_raw": RawText(b"")}
    c = Conflict("s", "t", (RawText(b"\x80"), 2**63 - 1), ConflictType.ERROR, row, row, None, (b"R" * 16, 1), None, 0)
    back = C.CONFLICT.decode(C.CONFLICT.encode(c))
    assert exact(back) == exact(c)
    assert type(back.key[0]) is RawText and back.remote_row is not None and type(back.remote_row["raw"]) is RawText


def test_knowledge_of_many_replicas_and_empty_knowledge_round_trip() -> None:
    many = Knowledge.from_ranges(
        {i.to_bytes(16, "big"): [(1, 10 * i + 1), (10 * i + 5, 10 * i + 9)] for i in range(1, 2001)}
    )
    for k in (Knowledge.empty(), many):
        assert C.KNOWLEDGE.decode(C.KNOWLEDGE.encode(k)) == k


def test_policy_travels_by_name_and_a_callback_is_refused() -> None:
    for p in Policy:
        assert p.value.encode() in C.encode_policy(p)
    with pytest.raises(ConfigurationError, match="runs only where the destination database is in this process"):
        C.encode_policy(lambda c: Outcome.SOURCE)
    with pytest.raises(ConfigurationError, match="last-writer-wins"):
        C.encode_policy(lambda c: Outcome.SOURCE)


# -- strict refusal -------------------------------------------------------------------------

K = Knowledge.from_ranges({b"A" * 16: [(1, 9)], b"B" * 16: [(3, 4)]})
CONFLICT = Conflict(
    "shop", "item", (1,), ConflictType.UPDATE_UPDATE, {"id": 1, "v": "a"}, {"id": 1, "v": "b"},
    (b"A" * 16, 3), (b"B" * 16, 4), 10, 20, "last-writer-wins", Outcome.SOURCE, "", 7, 30,
)  # fmt: skip
ITEM = TableSchema(
    "item",
    ("id", "v"),
    ("id",),
    ("integer", "text"),
    (
        Column("id", ValueType.INTEGER, False, declared="INTEGER"),
        Column("v", ValueType.TEXT, True, 20, None, None, "VARCHAR(20)"),
    ),
)
SAMPLES: dict[str, Any] = {
    "knowledge": K,
    "table-schema": ITEM,
    "schemas": {"item": ITEM},
    "replica-info": ReplicaInfo("shop", b"A" * 16, 9, K, Knowledge.empty(), "fp", (ITEM,)),
    "conflict": CONFLICT,
    "apply-report": ApplyReport(3, 2, 0, 1, 0, [CONFLICT], K, K, 9, True, K),
    "session-end": SessionEnd("0123456789abcdef" * 2, K, Knowledge.empty(), (CONFLICT,)),
    "policy": Policy.SOURCE_WINS,
    "changes-request": C.ChangesRequest(K, 0, 9, 500, 1 << 20),
    "statuses": [Status("shop", b"A" * 16, 9, K, Knowledge.empty(), "fp", ("item",), 4, 1, 2, 0)],
    "conflicts": [CONFLICT],
}


def valid(kind: str) -> bytes:
    encode: Callable[[Any], bytes] = KINDS[kind][0][0]
    return encode(SAMPLES[kind])


def decoder(kind: str) -> Callable[..., Any]:
    return KINDS[kind][0][1]


def ext(code: int, data: bytes) -> Any:
    return RawText(data) if code == 1 else msgpack.ExtType(code, data)


def unpack(data: bytes) -> list[Any]:
    out: list[Any] = msgpack.unpackb(data, raw=False, ext_hook=ext)
    return out


def pack(msg: Any) -> bytes:
    def default(v: object) -> Any:
        assert type(v) is RawText
        return msgpack.ExtType(1, v.data)

    out: bytes = msgpack.packb(msg, use_bin_type=True, default=default)
    return out


def refused(kind: str, data: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decoder(kind)(data)
    assert reason in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("kind", KINDS)
def test_every_truncation_is_refused(kind: str) -> None:
    data = valid(kind)
    for n in range(len(data)):
        refused(kind, data[:n], "malformed")


@pytest.mark.parametrize("kind", KINDS)
def test_trailing_bytes_are_refused(kind: str) -> None:
    refused(kind, valid(kind) + b"\x00", "trailing bytes")
    refused(kind, valid(kind) + valid(kind), "trailing bytes")


@pytest.mark.parametrize("kind", KINDS)
def test_oversized_input_is_refused_before_decoding(kind: str) -> None:
    data = valid(kind)
    assert decoder(kind)(data, max_size=len(data)) is not None
    with pytest.raises(ProtocolError, match=f"{len(data)} bytes exceeds the limit of {len(data) - 1}"):
        decoder(kind)(data, max_size=len(data) - 1)


@pytest.mark.parametrize("kind", KINDS)
def test_extra_and_missing_fields_are_refused(kind: str) -> None:
    msg = unpack(valid(kind))
    refused(kind, pack([*msg, None]), "fields, expected")
    refused(kind, pack(msg[:-1]), "fields, expected")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("version", [0, 2, True, "1", 1.0, None])
def test_other_format_versions_are_refused(kind: str, version: object) -> None:
    msg = unpack(valid(kind))
    msg[1] = version
    refused(kind, pack(msg), "unsupported format")


@pytest.mark.parametrize("kind", KINDS)
def test_a_message_of_another_kind_or_shape_is_refused(kind: str) -> None:
    other = "policy" if kind != "policy" else "knowledge"
    refused(kind, valid(other), f"not a {kind} message")
    refused(kind, pack({"kind": kind}), "must be an array, not a map")
    refused(kind, pack(kind), "must be an array, not a string")
    with pytest.raises(ProtocolError, match="expected bytes"):
        decoder(kind)(bytearray(valid(kind)))


def field(kind: str, index: int, value: object, reason: str, *path: int) -> tuple[str, int, tuple[int, ...], Any, str]:
    return kind, index, path, value, reason


# (kind, body field, path inside it, bad value, words of the reason)
BAD_FIELDS = [
    field("replica-info", 2, True, "tick must be an integer, not a bool"),
    field("replica-info", 2, "9", "tick must be an integer, not a string"),
    field("replica-info", 2, 9.0, "tick must be an integer, not float"),
    field("replica-info", 2, -1, "tick -1 is outside 0..9223372036854775807"),
    field("replica-info", 2, 2**63, "tick 9223372036854775808 is outside"),
    field("replica-info", 1, b"A" * 15, "replica id is 15 bytes, expected 16"),
    field("replica-info", 1, b"A" * 17, "replica id is 17 bytes, expected 16"),
    field("replica-info", 1, "A" * 16, "replica id must be bin, not a string"),
    field("replica-info", 0, b"shop", "scope must be a string, not bin"),
    field("replica-info", 0, None, "scope must be a string, not nil"),
    field("replica-info", 3, [[b"A" * 16, 0, 3]], "knowledge: malformed knowledge: overlapping"),
    field("replica-info", 4, {"a": 1}, "forgotten knowledge: malformed knowledge: not a list"),
    field("replica-info", 6, [["item", ["id"], ["id"], ["integer"], []]] * 2, "tables names one table twice"),
    field("table-schema", 2, ["nope"], "key of 'item' names a column the table lacks"),
    field("table-schema", 2, [], "key of 'item' is empty"),
    field("table-schema", 1, ["id", "id"], "names one column twice"),
    field("table-schema", 3, ["integer"], "'item' has 2 columns but 1 types"),
    field("table-schema", 3, ["integer", 1], "type of a column of 'item' must be a string"),
    field("schemas", 0, [["item", ["id"], ["id"], ["integer"]]], "table schema has 4 fields, expected 5"),
    field("table-schema", 4, None, "descriptors of 'item' must be an array, not nil"),
    field("table-schema", 4, [["id", "integer", False, None, None, None, ""]], "do not name its columns in order"),
    field("table-schema", 4, "money", "descriptor of a column of 'item' type 'money' is not one of integer", 4, 0, 1),
    field("table-schema", 4, 1, "descriptor of a column of 'item' nullable must be a bool, not int", 4, 0, 2),
    field("table-schema", 4, -1, "descriptor of a column of 'item' length -1 is outside 0..2147483647", 4, 1, 3),
    field("table-schema", 4, 2**31, "precision 2147483648 is outside", 4, 1, 4),
    field("table-schema", 4, True, "scale must be an integer, not a bool", 4, 1, 5),
    field("table-schema", 4, None, "declared type must be a string, not nil", 4, 1, 6),
    field("table-schema", 4, ["v", "text", True], "has 3 fields, expected 7", 4, 1),
    field("conflict", 3, "update/insert", "conflict type 'update/insert' is not one of update/update"),
    field("conflict", 3, "UPDATE_UPDATE", "is not one of"),
    field("conflict", 11, "winner", "conflict outcome 'winner' is not one of source"),
    field("conflict", 7, None, "conflict remote version must be a version, not nil"),
    field("conflict", 7, [b"B" * 16, 0], "conflict remote version tick 0 is outside 1.."),
    field("conflict", 6, [b"B" * 16, 3, 1], "conflict local version has 3 fields, expected 2"),
    field("conflict", 6, [b"B" * 8, 3], "conflict local version replica is 8 bytes, expected 16"),
    field("conflict", 2, [], "conflict key is empty"),
    field(
        "conflict",
        2,
        [True],
        "conflict key value must be nil, an integer, a float, a string, bin or raw text, not a bool",
    ),
    field("conflict", 2, [2**64 - 1], "outside the 64-bit range"),
    field("conflict", 2, [msgpack.ExtType(5, b"x")], "unknown msgpack extension type 5"),
    field("conflict", 2, [[1]], "must be nil, an integer, a float, a string, bin or raw text, not an array"),
    field("conflict", 4, [["id"], [1, 2]], "conflict local row has 1 columns but 2 values"),
    field("conflict", 4, [["id", "id"], [1, 2]], "names one column twice"),
    field("conflict", 4, {"id": 1}, "conflict local row must be an array, not a map"),
    field("conflict", 5, [["id", "v"], [1, {"x": 1}]], "remote row value of 'v' must be nil"),
    field("conflict", 8, True, "conflict local time must be an integer, not a bool"),
    field("conflict", 9, None, "conflict remote time must be an integer, not nil"),
    field("conflict", 13, 2**63, "conflict id 9223372036854775808 is outside"),
    field("apply-report", 0, -1, "received -1 is outside 0.."),
    field("apply-report", 3, False, "conflicts must be an integer, not a bool"),
    field("apply-report", 9, 1, "final must be a bool, not int"),
    field("apply-report", 8, 2**63, "last 9223372036854775808 is outside"),
    field("apply-report", 5, [["x"]], "failed entry has 1 fields, expected 15"),
    field("apply-report", 5, None, "failed must be an array, not nil"),
    field("apply-report", 3, "bad", "outcome 'bad' is not one of", 5, 0, 11),
    field("session-end", 0, "0123456789ABCDEF" * 2, "session must be 32 lowercase hex digits"),
    field("session-end", 0, "abc", "session must be 32 lowercase hex digits"),
    field("session-end", 3, ["x"], "failures entry must be an array, not a string"),
    field("policy", 0, "newest-wins", "policy 'newest-wins' is not one of last-writer-wins"),
    field("policy", 0, "SOURCE_WINS", "is not one of"),
    field("changes-request", 1, -1, "after -1 is outside 0.."),
    field("changes-request", 2, 2**63, "upto 9223372036854775808 is outside"),
    field("changes-request", 3, 0, "max_rows 0 is outside 1..9223372036854775807"),
    field("changes-request", 4, 2**63, "max_bytes 9223372036854775808 is outside"),
    field("changes-request", 3, True, "max_rows must be an integer, not a bool"),
    field("changes-request", 0, [[b"A" * 12, 1, 3]], "known: malformed knowledge: bad replica id"),
    field("statuses", 0, -1, "status tick -1 is outside", 0, 0, 2),
    field("statuses", 0, ["item", "item"], "status tables names one column twice", 0, 0, 6),
    field("statuses", 0, b"A", "status replica id is 1 bytes, expected 16", 0, 0, 1),
    field("statuses", 0, None, "status pending must be an integer, not nil", 0, 0, 10),
    field("conflicts", 0, "winner", "conflicts entry outcome 'winner' is not one of", 0, 0, 11),
]


@pytest.mark.parametrize(("kind", "index", "path", "value", "reason"), BAD_FIELDS)
def test_a_bad_field_is_refused_with_its_reason(
    kind: str, index: int, path: tuple[int, ...], value: object, reason: str
) -> None:
    msg = unpack(valid(kind))
    if path:  # a field nested in the body field at ``index`` (e.g. inside a failed conflict)
        node = msg[2 + path[0]]
        for i in path[1:-1]:
            node = node[i]
        node[path[-1]] = value
    else:
        msg[2 + index] = value
    refused(kind, pack(msg), reason)


def test_non_utf8_string_is_refused() -> None:
    data = valid("policy").replace(b"source-wins", b"source-win\xff")
    refused("policy", data, "truncated or not msgpack")


def test_encoding_refuses_what_decoding_would() -> None:
    bad = Conflict("s", "t", (True,), ConflictType.ERROR, None, None, None, (b"R" * 16, 1), None, 0)
    with pytest.raises(ProtocolError, match=r"cannot encode conflict: conflict key value must be .* not a bool"):
        C.CONFLICT.encode(bad)
    with pytest.raises(ProtocolError, match="cannot encode changes-request: max_rows 0 is outside"):
        C.CHANGES_REQUEST.encode(C.ChangesRequest(K, 0, 9, 0, 1))
    with pytest.raises(ProtocolError, match="replica id is 4 bytes"):
        C.REPLICA_INFO.encode(ReplicaInfo("s", b"abcd", 1, K, K, "fp", ()))
    with pytest.raises(ProtocolError, match="session must be 32 lowercase hex"):
        C.SESSION_END.encode(SessionEnd("not-a-session", K, K))
    with pytest.raises(ProtocolError, match="entry 'a' holds table 'item'"):
        C.SCHEMAS.encode({"a": ITEM})


def test_error_messages() -> None:
    back = C.ERROR.decode(C.ERROR.encode(ScopeError("unknown scope 'x'")))
    assert type(back) is ScopeError and str(back) == "unknown scope 'x'"
    msg = unpack(C.ERROR.encode(ScopeError("x")))
    refused_error = pack([*msg[:2], "scope", None])
    with pytest.raises(ProtocolError, match="message must be a string, not nil"):
        C.ERROR.decode(refused_error)
    unknown = C.ERROR.decode(pack([*msg[:2], "teapot", "short and stout"]))
    assert type(unknown) is ProtocolError and "teapot" in str(unknown)


# -- fuzz ---------------------------------------------------------------------------------------


@st.composite
def mutations(draw: st.DrawFn) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(list(KINDS)))
    data = bytearray(valid(kind))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=9))
        elif op == "delete" and data:
            del data[at : at + draw(st.integers(1, 4))]
        else:
            del data[at:]
    return kind, bytes(data)


@settings(max_examples=1500)
@given(mutations())
def test_mutated_input_decodes_to_a_valid_message_or_is_refused(case: tuple[str, bytes]) -> None:
    kind, data = case
    encode, decode = KINDS[kind][0]
    try:
        value = decode(data)
    except ProtocolError:
        return
    # What decodes is a valid message: it encodes again, to the same thing.
    assert exact(decode(encode(value))) == exact(value)


@settings(max_examples=300)
@given(st.binary(max_size=64), st.sampled_from(list(KINDS)))
def test_random_bytes_are_refused(data: bytes, kind: str) -> None:
    with pytest.raises(ProtocolError):
        decoder(kind)(data)


# -- a pass of batches as one stream -------------------------------------------------------


def stream(batches: list[bytes]) -> bytes:
    return b"".join(C.encode_batch_stream(batches))


@settings(max_examples=100)
@given(st.lists(st.binary(max_size=70_000), max_size=5), st.integers(1, 100_000))
def test_a_stream_yields_its_batches_however_it_is_cut(batches: list[bytes], cut: int) -> None:
    data = stream(batches)
    chunks = [data[i : i + cut] for i in range(0, len(data), cut)]
    assert list(C.decode_batch_stream(chunks)) == batches


def test_each_batch_is_yielded_before_the_stream_ends() -> None:
    frames = iter(C.encode_batch_stream([b"one", b"two"]))
    out = C.decode_batch_stream(frames)
    assert next(out) == b"one"
    assert next(out) == b"two"
    assert list(out) == []


def test_a_stream_cut_short_is_refused_after_its_whole_batches() -> None:
    data = stream([b"a" * 300, b"b" * 300])
    for n in range(len(data)):
        got: list[bytes] = []
        with pytest.raises(ProtocolError, match="malformed batch stream"):
            got.extend(C.decode_batch_stream([data[:n]]))
        assert got == [b"a" * 300, b"b" * 300][: len(got)]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (pack(["batch-stream", 2]) + b"\xc0", "unsupported format 2"),
        (pack(["batch-stream", True]) + b"\xc0", "unsupported format True"),
        (pack(["knowledge", 1]) + b"\xc0", "not a batch stream"),
        (pack({"batch-stream": 1}) + b"\xc0", "not a batch stream"),
        (pack(["batch-stream", 1]) + pack("text") + b"\xc0", "an item is a string, not a batch"),
        (pack(["batch-stream", 1]) + pack([b"x"]) + b"\xc0", "an item is an array, not a batch"),
        (pack(["batch-stream", 1]) + b"\xc0\x00", "bytes after its end mark"),
        (pack(["batch-stream", 1]) + b"\xc0\xc4", "bytes after its end mark"),
        (pack(["batch-stream", 1]) + b"\xc1\xc0", "not msgpack"),
        (pack(["batch-stream", 1]) + pack(b"x" * 101) + b"\xc0", "a batch exceeds the limit of 100 bytes"),
        (pack(["batch-stream", 1]) + b"\xc6\xff\xff\xff\xff" + b"x" * 200_000, "exceeds the limit of 100 bytes"),
    ],
)
def test_a_bad_stream_is_refused(data: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        list(C.decode_batch_stream([data], max_size=100))


def test_bytes_after_the_end_mark_are_refused_in_a_later_chunk() -> None:
    with pytest.raises(ProtocolError, match="after its end mark"):
        list(C.decode_batch_stream([stream([b"x"]), b"\x00"]))
    with pytest.raises(ProtocolError, match="not bytes"):
        list(C.decode_batch_stream([stream([b"x"]).decode("latin-1")]))  # type: ignore[list-item]
