"""Unit tests of the knowledge algebra: ranges, merging, holes, serialization."""

from __future__ import annotations

import msgpack
import pytest

from peersync import Knowledge, ProtocolError

A = b"A" * 16
B = b"B" * 16
C = b"C" * 16


def k_of(**ranges: list[tuple[int, int]]) -> Knowledge:
    """``k_of(A=[(1, 10)])`` with the keyword naming one of A, B, C."""
    ids = {"A": A, "B": B, "C": C}
    return Knowledge.from_ranges({ids[name]: pairs for name, pairs in ranges.items()})


# -- queries -------------------------------------------------------------------


def test_empty() -> None:
    k = Knowledge.empty()
    assert k.is_empty()
    assert k.replicas() == []
    assert k.fragments() == 0
    assert k.floor(A) == 0
    assert k.ranges(A) == []
    assert not k.contains(A, 1)
    assert k == Knowledge()


def test_contains_floor_and_ranges() -> None:
    k = k_of(A=[(1, 10), (15, 15), (20, 22)], B=[(3, 4)])
    assert [t for t in range(0, 25) if k.contains(A, t)] == [*range(1, 11), 15, 20, 21, 22]
    assert [t for t in range(0, 10) if k.contains(B, t)] == [3, 4]
    assert not k.contains(C, 1)
    assert k.floor(A) == 10
    assert k.floor(B) == 0  # ticks 1..2 unknown: 3..4 is an exception, not a floor
    assert k.floor(C) == 0
    assert k.ranges(A) == [(1, 10), (15, 15), (20, 22)]
    assert k.ranges(B) == [(3, 4)]
    assert k.replicas() == [A, B]
    assert k.fragments() == 4
    assert not k.is_empty()


def test_in_operator() -> None:
    k = k_of(A=[(1, 3)])
    assert (A, 2) in k
    assert (A, 4) not in k
    assert (B, 1) not in k
    assert A not in k  # type: ignore[operator]
    assert (A, 1, 2) not in k
    assert [A, 1] not in k


# -- add / add_range merging -----------------------------------------------------


def test_add_merges_adjacent_ticks() -> None:
    k = Knowledge.empty().add(A, 1).add(A, 2).add(A, 3)
    assert k.ranges(A) == [(1, 3)]
    k = k.add(A, 5)
    assert k.ranges(A) == [(1, 3), (5, 5)]
    assert k.fragments() == 2
    k = k.add(A, 4)  # fills the gap: both sides join
    assert k.ranges(A) == [(1, 5)]
    assert k.fragments() == 1
    assert k.floor(A) == 5


def test_add_known_tick_is_a_no_op() -> None:
    k = k_of(A=[(1, 5)])
    assert k.add(A, 3) == k
    assert k.add_range(A, 2, 4) == k


@pytest.mark.parametrize(
    ("start", "added", "expected"),
    [
        ([(1, 5)], (3, 8), [(1, 8)]),  # overlap at the end
        ([(5, 9)], (1, 6), [(1, 9)]),  # overlap at the start
        ([(1, 5)], (6, 9), [(1, 9)]),  # adjacent after
        ([(6, 9)], (1, 5), [(1, 9)]),  # adjacent before
        ([(10, 12)], (1, 20), [(1, 20)]),  # covers
        ([(1, 20)], (5, 6), [(1, 20)]),  # inside
        ([(1, 3), (7, 9)], (4, 6), [(1, 9)]),  # bridges two ranges exactly
        ([(1, 3), (7, 9), (12, 14)], (2, 12), [(1, 14)]),  # swallows several
        ([(1, 3), (9, 9)], (5, 6), [(1, 3), (5, 6), (9, 9)]),  # disjoint, lands between
        ([(1, 3)], (5, 5), [(1, 3), (5, 5)]),  # one tick gap stays a gap
    ],
)
def test_add_range_merges(
    start: list[tuple[int, int]], added: tuple[int, int], expected: list[tuple[int, int]]
) -> None:
    k = k_of(A=start).add_range(A, *added)
    assert k.ranges(A) == expected
    assert k == k_of(A=expected)


def test_add_range_empty_is_a_no_op() -> None:
    k = k_of(A=[(1, 3)])
    assert k.add_range(A, 5, 4) is k
    assert k.add_range(B, 2, 1) == k


def test_from_ranges_normalizes_overlaps() -> None:
    k = k_of(A=[(7, 9), (1, 3), (2, 5), (6, 6), (20, 20)])
    assert k.ranges(A) == [(1, 9), (20, 20)]


def test_from_versions() -> None:
    k = Knowledge.from_versions([(A, 3), (A, 1), (A, 2), (B, 7), (A, 3)])
    assert k.ranges(A) == [(1, 3)]
    assert k.ranges(B) == [(7, 7)]


def test_operations_do_not_mutate() -> None:
    k = k_of(A=[(1, 3)])
    before = k.to_bytes()
    k.add(A, 4)
    k.add_range(B, 1, 9)
    k.exclude(k_of(A=[(2, 2)]))
    _ = k | k_of(C=[(1, 1)])
    assert k.to_bytes() == before
    assert k.ranges(A) == [(1, 3)]


# -- restrict / without / exclude / project ----------------------------------------


def test_restrict() -> None:
    k = k_of(A=[(1, 10), (15, 20)], B=[(1, 5)])
    r = k.restrict(A, 5, 16)
    assert r.ranges(A) == [(5, 10), (15, 16)]
    assert r.replicas() == [A]  # other replicas are dropped
    assert r.floor(A) == 0
    assert k.restrict(A, 11, 14).is_empty()
    assert k.restrict(A, 7, 6).is_empty()
    assert k.restrict(C, 1, 100).is_empty()
    assert k.restrict(A, -5, 3).ranges(A) == [(1, 3)]
    assert k.restrict(A, 1, 1000) == k.without(B)


def test_without() -> None:
    k = k_of(A=[(1, 10)], B=[(1, 5)])
    assert k.without(A) == k_of(B=[(1, 5)])
    assert k.without(C) == k
    assert k.without(A).without(B).is_empty()


def test_exclude_punches_a_hole_and_floor_drops_below_it() -> None:
    k = k_of(A=[(1, 10)], B=[(1, 5)])
    holed = k.exclude(Knowledge.from_versions([(A, 5)]))
    assert holed.ranges(A) == [(1, 4), (6, 10)]
    assert holed.floor(A) == 4
    assert not holed.contains(A, 5)
    assert holed.contains(A, 6)
    assert holed.fragments() == 3
    assert holed.ranges(B) == [(1, 5)]  # untouched
    # Putting the version back heals the hole.
    assert holed.add(A, 5) == k


def test_exclude_first_tick_zeroes_the_floor() -> None:
    k = k_of(A=[(1, 10)]) - Knowledge.from_versions([(A, 1)])
    assert k.floor(A) == 0
    assert k.ranges(A) == [(2, 10)]


def test_exclude_edges_and_everything() -> None:
    k = k_of(A=[(1, 10), (20, 30)])
    assert (k - k_of(A=[(8, 22)])).ranges(A) == [(1, 7), (23, 30)]
    assert (k - k_of(A=[(1, 30)])).is_empty()
    assert (k - k).is_empty()
    assert (k - k_of(A=[(11, 19)])) == k
    assert (k - k_of(B=[(1, 30)])) == k
    assert (k - k_of(A=[(3, 3), (5, 5), (25, 25)])).ranges(A) == [(1, 2), (4, 4), (6, 10), (20, 24), (26, 30)]


def test_project_is_intersection() -> None:
    a = k_of(A=[(1, 10), (20, 30)], B=[(1, 5)])
    b = k_of(A=[(5, 25)], C=[(1, 3)])
    assert a.project(b) == k_of(A=[(5, 10), (20, 25)])
    assert (a & b) == a.project(b)
    assert a.project(Knowledge.empty()).is_empty()
    assert a & a == a


def test_union_operator() -> None:
    a = k_of(A=[(1, 3)], B=[(2, 2)])
    b = k_of(A=[(4, 6)], C=[(1, 1)])
    assert a | b == a.union(b) == k_of(A=[(1, 6)], B=[(2, 2)], C=[(1, 1)])


def test_contains_knowledge() -> None:
    big = k_of(A=[(1, 10), (20, 30)], B=[(1, 5)])
    assert big.contains_knowledge(Knowledge.empty())
    assert Knowledge.empty().contains_knowledge(Knowledge.empty())
    assert not Knowledge.empty().contains_knowledge(big)
    assert big.contains_knowledge(big)
    assert big.contains_knowledge(k_of(A=[(2, 9), (25, 25)], B=[(5, 5)]))
    assert not big.contains_knowledge(k_of(A=[(10, 11)]))  # one tick past a range
    assert not big.contains_knowledge(k_of(A=[(15, 15)]))  # in the gap
    assert not big.contains_knowledge(k_of(C=[(1, 1)]))  # unknown replica


# -- value semantics and text forms ------------------------------------------------


def test_equality_and_hash_by_value() -> None:
    a = k_of(A=[(1, 5)]).add(B, 3)
    b = Knowledge.from_versions([(B, 3), *((A, t) for t in range(5, 0, -1))])
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1
    assert a != k_of(A=[(1, 5)])
    assert a != "not knowledge"


def test_describe_and_repr() -> None:
    k = k_of(A=[(1, 10), (15, 15)], B=[(3, 4)])
    assert k.describe() == "41414141:1-10,15 42424242:3-4"
    assert k.describe({A: "alpha"}) == "alpha:1-10,15 42424242:3-4"
    assert Knowledge.empty().describe() == "{}"
    assert repr(k) == "Knowledge(41414141:1-10,15 42424242:3-4)"


def test_to_dict() -> None:
    k = k_of(B=[(3, 4)], A=[(1, 10), (15, 15)])
    d = k.to_dict()
    assert d == {A.hex(): [[1, 10], [15, 15]], B.hex(): [[3, 4]]}
    assert list(d) == sorted(d)
    assert Knowledge.empty().to_dict() == {}


# -- argument checking ------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda: Knowledge.empty().add(A, 0),
        lambda: Knowledge.empty().add(A, -1),
        lambda: Knowledge.empty().add_range(A, 0, 5),
        lambda: Knowledge.from_versions([(A, 0)]),
        lambda: Knowledge.from_ranges({A: [(0, 3)]}),
        lambda: Knowledge.from_ranges({A: [(-2, -1)]}),
    ],
    ids=["add-0", "add-negative", "add_range-0", "from_versions-0", "from_ranges-0", "from_ranges-negative"],
)
def test_tick_below_one_is_a_value_error(call: object) -> None:
    with pytest.raises(ValueError, match="tick"):
        call()  # type: ignore[operator]


@pytest.mark.parametrize("rid", [b"", b"A" * 15, b"A" * 17, "A" * 16, None], ids=repr)
def test_replica_id_not_16_bytes_is_a_value_error(rid: object) -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        Knowledge.empty().add(rid, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="16 bytes"):
        Knowledge.empty().add_range(rid, 1, 5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="16 bytes"):
        Knowledge.from_versions([(rid, 1)])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="16 bytes"):
        Knowledge.from_ranges({rid: [(1, 2)]})  # type: ignore[dict-item]


# -- serialization ----------------------------------------------------------------

SAMPLE = k_of(A=[(1, 1000), (1010, 1020)], B=[(5, 5)], C=[(1, 2**40)])


@pytest.mark.parametrize("k", [Knowledge.empty(), k_of(A=[(1, 1)]), SAMPLE], ids=["empty", "one", "sample"])
def test_bytes_and_wire_round_trip(k: Knowledge) -> None:
    assert Knowledge.from_bytes(k.to_bytes()) == k
    assert Knowledge.from_wire(k.to_wire()) == k
    assert Knowledge.from_bytes(k.to_bytes()).to_bytes() == k.to_bytes()


def test_serialization_is_canonical() -> None:
    a = k_of(A=[(1, 5)], B=[(2, 2)])
    b = Knowledge.empty().add(B, 2).add_range(A, 3, 5).add_range(A, 1, 2)
    assert a.to_bytes() == b.to_bytes()


def _packed(obj: object) -> bytes:
    out: bytes = msgpack.packb(obj, use_bin_type=True)
    return out


GOOD = SAMPLE.to_bytes()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",  # a byte msgpack never uses
        b"\x93\x01",  # an array of three holding one item
        bytes(range(200, 256)),  # ext16 header with a length far past the end
        GOOD + b"\x00",  # trailing data
        _packed({"a": 1}),
        _packed(None),
        _packed("knowledge"),
        _packed([A]),  # a row that is not a list
        _packed([[A]]),  # a replica with no ranges
        _packed([[A, 1]]),  # a gap without a length
        _packed([[A, 1, 5, 3]]),
        _packed([[A, 1, 0]]),  # zero-length range
        _packed([[A, 1, -3]]),  # negative length
        _packed([[A, 0, 5]]),  # starts at tick 0
        _packed([[A, -4, 5]]),  # starts below tick 0
        _packed([[A, 1, 5, 0, 3]]),  # adjacent ranges: should have been one
        _packed([[A, 1, 5, -2, 3]]),  # overlapping ranges
        _packed([[A, 1, 5, 2, 0]]),  # zero-length second range
        _packed([[b"A" * 15, 1, 5]]),
        _packed([[b"A" * 17, 1, 5]]),
        _packed([[b"", 1, 5]]),
        _packed([["A" * 16, 1, 5]]),  # replica id as text
        _packed([[None, 1, 5]]),
        _packed([[A, 1, 5], [A, 10, 2]]),  # duplicate replica
        _packed([[A, 1, 5], [B, 1, 5], [A, 10, 2]]),  # duplicate, not adjacent
        _packed([[A, 1.0, 5]]),  # non-int ticks
        _packed([[A, 1, 5.5]]),
        _packed([[A, "1", 5]]),
        _packed([[A, 1, None]]),
        _packed([[A, True, 5]]),
        _packed([[A, 1, True]]),
        _packed([[A, [1], 5]]),
    ],
    ids=lambda data: data[:24].hex() or "empty",
)
def test_from_bytes_rejects_malformed_data(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        Knowledge.from_bytes(data)


def test_from_bytes_rejects_every_truncation() -> None:
    for n in range(len(GOOD)):
        with pytest.raises(ProtocolError):
            Knowledge.from_bytes(GOOD[:n])


@pytest.mark.parametrize("obj", [None, {}, "x", 3, (A, 1, 5), [(A, 1, 5)]], ids=repr)
def test_from_wire_rejects_non_lists(obj: object) -> None:
    with pytest.raises(ProtocolError):
        Knowledge.from_wire(obj)


def test_protocol_error_is_a_sync_error() -> None:
    import peersync

    with pytest.raises(peersync.SyncError):
        Knowledge.from_bytes(b"\xc1")


def test_size_grows_with_replicas_not_ticks() -> None:
    rids = [bytes([i]) * 16 for i in range(1, 21)]
    k = Knowledge.from_ranges({rid: [(1, 10**9 + i)] for i, rid in enumerate(rids)})
    assert k.fragments() == 20
    assert len(k.to_bytes()) <= 64 * 20
    # A single clock-vector entry costs about 22 bytes whatever its tick.
    assert len(Knowledge.from_ranges({A: [(1, 10)]}).to_bytes()) <= 32
    assert len(Knowledge.from_ranges({A: [(1, 2**62)]}).to_bytes()) <= 32
