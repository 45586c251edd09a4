"""The batch wire format: exact round trips, and strict refusal of bad input."""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Callable
from typing import Any

import msgpack
import pytest

from peersync import Knowledge, ProtocolError
from peersync._engine.model import Batch, Change, TableSchema
from peersync._engine.wire import decode_batch, encode_batch

SRC = b"S" * 16  # the source replica
P2 = b"2" * 16
P3 = b"3" * 16

ITEM = TableSchema("item", ("id", "name", "qty", "price"), ("id",), ("integer", "text", "integer", "real"))
DOC = TableSchema("doc", ("owner", "slot", "body", "data"), ("owner", "slot"), ("text", "integer", "text", "blob"))
SCHEMAS = {"item": ITEM, "doc": DOC}

MADE_WITH = Knowledge.from_ranges({SRC: [(1, 40)], P2: [(1, 9), (12, 12)], P3: [(3, 5)]})
T0 = 1_700_000_000_000


def batch(changes: dict[str, list[Change]], first: int = 1, last: int = 40, **kw: Any) -> Batch:
    fields: dict[str, Any] = {
        "scope": "shop",
        "source": SRC,
        "fingerprint": "fp-1",
        "made_with": MADE_WITH,
        "first": first,
        "last": last,
        "final": True,
    }
    fields.update(kw)
    return Batch(changes=changes, **fields)


def encode(b: Batch) -> bytes:
    return encode_batch(b, SCHEMAS)


def round_trip(b: Batch) -> Batch:
    return decode_batch(encode(b), SCHEMAS)


# -- round trips ------------------------------------------------------------------------

RICH = batch(
    {
        "item": [
            (1, False, (SRC, 1), (SRC, 1), T0, (1, "plain", 3, 1.5)),  # own version, creation = version
            (2, False, (SRC, 2), (SRC, 1), T0 + 5, (2, "ünïcødé ✓ 漢字 🎉", -7, -0.0)),  # creation differs
            (4, False, (P2, 9), (P2, 9), T0 - 3_600_000, (3, None, None, None)),  # foreign version, all NULL
            (5, True, (P3, 4), (P2, 3), T0 + 1, (4,)),  # foreign tombstone, foreign creation
            (7, True, (SRC, 7), (SRC, 7), T0, (5,)),  # own tombstone
            (9, False, (P2, 12), (SRC, 2), T0, (2**63 - 1, "", -(2**63), math.inf)),  # extreme ints
            (10, False, (SRC, 10), (P3, 5), 0, (-1, "x" * 10_000, 0, 1e-300)),
            (40, False, (SRC, 11), (SRC, 11), T0, (6, "own replica, older tick", 1, 2.0)),  # own id, explicit tick
        ],
        "doc": [
            (3, False, (SRC, 3), (SRC, 3), T0, ("alice", 1, "text", b"\x00\x01\xff" * 100)),
            (8, False, (P3, 5), (P3, 3), T0 + 2, ("bob", -2, None, b"")),
            (11, True, (SRC, 11), (SRC, 3), T0, ("alice", 1)),
        ],
    }
)


@pytest.mark.parametrize(
    "b",
    [
        RICH,
        batch({}, first=1, last=0, final=True),  # nothing at all
        batch({}, first=5, last=4, made_with=Knowledge.empty()),
        batch({"item": []}, first=3, last=3, final=False),
        batch({"doc": RICH.changes["doc"]}, first=2, last=11, final=False),
    ],
    ids=["rich", "empty", "empty-later", "empty-table", "doc-only"],
)
def test_round_trip(b: Batch) -> None:
    back = round_trip(b)
    assert back == b
    assert back.rows == b.rows
    assert encode(back) == encode(b)


def test_round_trip_preserves_value_types() -> None:
    back = round_trip(RICH)
    for name, rows in RICH.changes.items():
        for sent, got in zip(rows, back.changes[name], strict=True):
            assert [type(v) for v in got[5]] == [type(v) for v in sent[5]]
            assert got[1] is sent[1]
    neg_zero = back.changes["item"][1][5][3]
    assert neg_zero == 0.0 and math.copysign(1, neg_zero) == -1


def test_nan_survives() -> None:
    back = round_trip(batch({"item": [(1, False, (SRC, 1), (SRC, 1), T0, (1, "n", 1, math.nan))]}))
    assert math.isnan(back.changes["item"][0][5][3])


def test_decoded_header() -> None:
    back = round_trip(RICH)
    assert (back.scope, back.source, back.fingerprint, back.first, back.last, back.final) == (
        "shop",
        SRC,
        "fp-1",
        1,
        40,
        True,
    )
    assert back.made_with == MADE_WITH


def test_own_rows_carry_little_metadata() -> None:
    rows: list[Change] = [(t, False, (SRC, t), (SRC, t), T0, (t, None, None, None)) for t in range(1, 1001)]
    data = encode(batch({"item": rows}, last=1000))
    # Each row: the row array (1 byte), its tick offset (up to 3) and time offset (1), and its
    # values (a key of up to 3 bytes, three nils): 11 bytes at most, where the full form takes 16.
    assert len(data) < 1000 * 11 + 200


def test_only_live_rows_of_the_sources_own_making_take_the_short_form() -> None:
    env = msgpack.unpackb(encode(RICH), raw=False)
    forms = {name: [len(r) - 2 - len(SCHEMAS[name].columns) for r in rows] for name, _, rows in env[TABLES]}
    # 0: short; 5: the full header. Own, creation = version, live: short; anything else: full.
    assert forms == {"item": [0, 5, 5, 5, 5, 5, 5, 5], "doc": [0, 5, 5]}
    extra = batch(
        {"item": [(1, False, (SRC, 1), (SRC, 1), T0, (1, "a", 1, 1.0))]},
        last=1,
        extras=(Knowledge.empty().add(P2, 99),),
        extra_of={"item": [1]},
    )
    assert len(msgpack.unpackb(encode(extra), raw=False)[TABLES][0][2][0]) == 7 + 4  # extra knowledge: full
    assert round_trip(extra) == extra


# -- refusals --------------------------------------------------------------------------

SMALL = batch(
    {
        "item": [
            (1, False, (SRC, 1), (SRC, 1), T0, (1, "a", 1, 1.0)),
            (2, False, (P2, 7), (P3, 1), T0 + 1, (2, "b", 2, None)),
            (3, True, (SRC, 3), (SRC, 1), T0 + 2, (1,)),
        ]
    },
    last=3,
)
GOOD = encode(SMALL)


def envelope() -> list[Any]:
    env: list[Any] = msgpack.unpackb(GOOD, raw=False)
    return env


def packed(env: Any) -> bytes:
    out: bytes = msgpack.packb(env, use_bin_type=True)
    return out


def refused(data: bytes, schemas: dict[str, TableSchema] | None = None, match: str | None = None) -> None:
    with pytest.raises(ProtocolError, match=match):
        decode_batch(data, SCHEMAS if schemas is None else schemas)


def test_envelope_layout_is_what_the_tests_assume() -> None:
    env = envelope()
    assert env[0] == "peersync-batch" and env[1] == 2
    assert env[REPLICAS] == [SRC, P2, P3]
    assert env[TABLES][0][0] == "item" and len(env[TABLES][0][2]) == 3
    assert env[TABLES][0][2][0] == [1, 0, 1, "a", 1, 1.0]  # short: tick and time offsets, values
    assert len(env[TABLES][0][2][1]) == VALUES + 4  # full: a foreign version
    assert env[TABLES][0][2][2][VALUES:] == [1, None, None, None]  # a tombstone: the key, nil elsewhere
    assert decode_batch(packed(env), SCHEMAS) == SMALL


def test_every_truncation_is_refused() -> None:
    for n in range(len(GOOD)):
        refused(GOOD[:n])


def test_trailing_bytes_are_refused() -> None:
    refused(GOOD + b"\x00")


@pytest.mark.parametrize(
    "data",
    [b"\xc1", b"\xc1" * 40, b"hello world", b"\x00", bytes(range(256))],
    ids=["reserved-byte", "reserved-bytes", "text", "an-int", "all-bytes"],
)
def test_garbage_is_refused(data: bytes) -> None:
    refused(data)


def test_random_garbage_is_refused() -> None:
    rng = random.Random(1234)
    for _ in range(200):
        refused(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80))))


def test_random_byte_flips_never_escape_as_other_errors() -> None:
    # A flipped byte may still decode to a valid batch; it must never raise anything else.
    rng = random.Random(99)
    for _ in range(300):
        data = bytearray(GOOD)
        data[rng.randrange(len(data))] = rng.randrange(256)
        with contextlib.suppress(ProtocolError):
            decode_batch(bytes(data), SCHEMAS)


@pytest.mark.parametrize("obj", [None, {}, [], "peersync-batch", ["peersync-batch", 1]], ids=repr)
def test_valid_msgpack_that_is_not_a_batch(obj: Any) -> None:
    refused(packed(obj))


Mutation = Callable[[list[Any]], None]


def _set(path: tuple[int, ...], value: Any) -> Mutation:
    def mutate(env: list[Any]) -> None:
        node = env
        for i in path[:-1]:
            node = node[i]
        node[path[-1]] = value

    return mutate


# Paths into the envelope ["peersync-batch", 2, scope, source, fingerprint, made_with, first, last, final,
# replicas, tables, extras]; tables = [[name, base_time, rows]]; a row = [tick_offset, time_offset,
# *values] (short: ROW0) or [tick_offset, flags, version_replica, version_tick, creation_replica,
# creation_tick, time_offset, *values] (full: ROW1, and the tombstone ROW2); values: every column.
REPLICAS, TABLES = 9, 10
TABLE = (TABLES, 0)
ROW0, ROW1, ROW2 = (*TABLE, 2, 0), (*TABLE, 2, 1), (*TABLE, 2, 2)
SHORT_VALUES = 2  # index of the first value (item: id, name, qty, price) in a short row
VALUES = 7  # ... and in a full one


def _row(i: int) -> Callable[[list[Any]], list[Any]]:
    def get(env: list[Any]) -> list[Any]:
        row: list[Any] = env[TABLES][0][2][i]
        return row

    return get


def _full(i: int) -> Callable[[list[Any]], list[Any]]:
    """Row ``i`` rewritten in the full form (same meaning), to mutate its header."""

    def get(env: list[Any]) -> list[Any]:
        rows = env[TABLES][0][2]
        if len(rows[i]) == SHORT_VALUES + len(ITEM.columns):
            rows[i] = [rows[i][0], 0, 0, None, None, None, *rows[i][1:]]
        row: list[Any] = rows[i]
        return row

    return get


def test_a_short_row_spelled_out_in_full_means_the_same() -> None:
    env = envelope()
    _full(0)(env)
    assert decode_batch(packed(env), SCHEMAS) == SMALL


BAD: dict[str, Mutation] = {
    "wrong-magic": _set((0,), "peersync-batcx"),
    "magic-as-bytes": _set((0,), b"peersync-batch"),
    "wrong-format": _set((1,), 3),
    "format-one-before-short-rows": _set((1,), 1),
    "format-zero": _set((1,), 0),
    "extra-envelope-item": lambda env: env.append(None),
    "missing-envelope-item": lambda env: env.pop(),
    "scope-not-text": _set((2,), 5),
    "source-short": _set((3,), b"S" * 15),
    "source-text": _set((3,), "S" * 16),
    "fingerprint-not-text": _set((4,), None),
    "made-with-overlapping": _set((5,), [[SRC, 1, 5, -1, 3]]),
    "made-with-zero-length": _set((5,), [[SRC, 1, 0]]),
    "made-with-not-list": _set((5,), {}),
    "first-zero": _set((6,), 0),
    "first-float": _set((6,), 1.0),
    "last-before-first": _set((7,), -1),
    "final-int": _set((8,), 1),
    "replicas-empty": _set((REPLICAS,), []),
    "replicas-source-not-first": _set((REPLICAS,), [P2, SRC, P3]),
    "replicas-bad-length": _set((REPLICAS,), [SRC, P2, b"3" * 17]),
    "replicas-text": _set((REPLICAS, 1), "2" * 16),
    "tables-not-list": _set((TABLES,), {"item": []}),
    "table-entry-short": _set(TABLE, ["item", 0]),
    "table-name-not-text": _set((*TABLE, 0), 1),
    "unknown-table": _set((*TABLE, 0), "nope"),
    "table-twice": lambda env: env[TABLES].append(env[TABLES][0]),
    "base-time-float": _set((*TABLE, 1), 1.5),
    "base-time-nil": _set((*TABLE, 1), None),
    # beyond SQL's 64-bit integers (the HTTP fuzzer's find: it failed in SQL, not here)
    "base-time-beyond-64-bits": _set((*TABLE, 1), 2**64 - 1),
    "last-beyond-63-bits": _set((7,), 2**63),
    "rows-not-list": _set((*TABLE, 2), "rows"),
    "row-not-list": _set(ROW0, 5),
    "row-too-short": _set(ROW0, [1, 0, 0, None, None]),
    "row-between-the-forms": lambda env: _row(1)(env).pop(5),
    "short-row-of-nothing": _set(ROW0, [1, 0]),
    # ticks outside first..last, or not strictly increasing
    "tick-after-last": _set((7,), 2),
    "tick-offset-past-last": _set((*ROW2, 0), 5),
    "tick-offset-zero": _set((*ROW0, 0), 0),
    "tick-offset-negative": _set((*ROW0, 0), -1),
    "tick-repeated": _set((*ROW1, 0), 1),
    "ticks-out-of-order": _set((*ROW2, 0), 1),
    "tick-offset-float": _set((*ROW0, 0), 1.0),
    "flags-two": _set((*ROW1, 1), 2),
    "flags-nil": _set((*ROW1, 1), None),
    "replica-index-out-of-range": _set((*ROW1, 2), 3),
    "replica-index-negative": _set((*ROW1, 2), -1),
    "replica-index-not-int": _set((*ROW1, 2), None),
    "implicit-tick-on-foreign-version": _set((*ROW1, 3), None),
    "version-tick-zero": _set((*ROW1, 3), 0),
    "version-tick-float": _set((*ROW1, 3), 7.0),
    "creation-index-out-of-range": _set((*ROW1, 4), 3),
    "creation-index-only": _set((*ROW1, 5), None),
    "creation-tick-only": lambda env: _full(0)(env).__setitem__(5, 4),
    "creation-tick-zero": _set((*ROW1, 5), 0),
    "time-not-int": _set((*ROW1, 6), "now"),
    "time-float": _set((*ROW1, 6), 0.5),
    "short-time-not-int": _set((*ROW0, 1), "now"),
    "short-time-nil": _set((*ROW0, 1), None),
    "short-time-float": _set((*ROW0, 1), 0.5),
    "short-row-beyond-made-with": _set(
        (5,), Knowledge.from_ranges({SRC: [(2, 40)], P2: [(1, 9)], P3: [(1, 1)]}).to_wire()
    ),
    "short-rows-out-of-order": lambda env: env[TABLES][0][2].insert(0, [2, 0, 9, "z", 1, 1.0]),
    "short-row-repeated": lambda env: env[TABLES][0][2].insert(1, list(_row(0)(env))),
    "row-too-few-values": lambda env: _row(0)(env).pop(),
    "row-too-many-values": lambda env: _row(0)(env).append(None),
    "tombstone-too-few-values": lambda env: _row(2)(env).pop(),
    "tombstone-carries-values": _set((*ROW2, VALUES + 1), "resurrected"),
    "live-row-marked-tombstone": lambda env: _full(0)(env).__setitem__(1, 1),
    "bool-value-true": _set((*ROW0, SHORT_VALUES + 2), True),
    "bool-value-false": _set((*ROW0, SHORT_VALUES), False),
    "bool-value-in-full-row": _set((*ROW1, VALUES + 2), True),
    "bool-key-in-tombstone": _set((*ROW2, VALUES), True),
    "list-value": _set((*ROW0, SHORT_VALUES + 1), ["a"]),
    "map-value": _set((*ROW0, SHORT_VALUES + 1), {"a": 1}),
    "ext-value": _set((*ROW0, SHORT_VALUES + 1), msgpack.ExtType(5, b"x")),
    "bin-row": _set(ROW0, b"\x01\x00\x01\x02\x01\x03"),
    "text-row": _set(ROW0, "\x01\x00\x01\x02\x01\x03"),
}


@pytest.mark.parametrize("mutate", list(BAD.values()), ids=list(BAD))
def test_bad_batches_are_refused(mutate: Mutation) -> None:
    env = envelope()
    mutate(env)
    refused(packed(env))


def test_unknown_table_names_the_table() -> None:
    refused(GOOD, {"doc": DOC}, match="'item'")


def test_wrong_value_count_against_a_different_schema() -> None:
    wider = TableSchema("item", (*ITEM.columns, "extra"), ITEM.key, (*ITEM.types, "text"))
    refused(GOOD, {"item": wider}, match="values")
    narrower = TableSchema("item", ITEM.columns[:3], ITEM.key, ITEM.types[:3])
    refused(GOOD, {"item": narrower}, match="values")


# Non-canonical but harmless spellings of the row flags and the format number: a strict
# decoder should refuse them too (msgpack keeps bools and floats apart from ints).
@pytest.mark.parametrize(
    "mutate",
    [_set((*ROW1, 1), False), _set((*ROW1, 1), 0.0), _set((*ROW2, 1), True), _set((1,), True), _set((1,), 1.0)],
    ids=["flags-false", "flags-float", "flags-true", "format-true", "format-float"],
)
def test_non_int_flags_and_format_are_refused(mutate: Mutation) -> None:
    env = envelope()
    mutate(env)
    refused(packed(env))
