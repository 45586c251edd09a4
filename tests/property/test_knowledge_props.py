"""Knowledge against a naive model: a Python set of ``(replica_id, tick)``.

Ticks are drawn from 1..60 and replica ids from four, so ranges collide,
touch and nest often.
"""

from __future__ import annotations

import itertools
import random

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from peersync import Knowledge

RIDS = [bytes([i]) * 16 for i in range(1, 5)]
OTHER = b"\xff" * 16  # never drawn: must never be contained
MAX_TICK = 60
PROBE_TICKS = range(-1, MAX_TICK + 3)

Model = frozenset[tuple[bytes, int]]

SETTINGS = settings(max_examples=300, deadline=None)

rids = st.sampled_from(RIDS)
ticks = st.integers(1, MAX_TICK)
seeds = st.integers(0, 2**32 - 1)  # shuffles: cheaper than drawing every swap


@st.composite
def knowledge(draw: st.DrawFn) -> tuple[Knowledge, Model]:
    """A knowledge and its model, built by one of several routes."""
    # Mostly short spans, so one replica often holds several fragments.
    spans = [
        (rid, lo, min(lo + n, MAX_TICK))
        for rid, lo, n in draw(st.lists(st.tuples(rids, ticks, st.integers(0, 8) | st.integers(0, 60)), max_size=10))
    ]
    model = frozenset((rid, t) for rid, a, b in spans for t in range(a, b + 1))
    route = draw(st.sampled_from(["ranges", "versions", "add_range", "add"]))
    if route == "ranges":
        by: dict[bytes, list[tuple[int, int]]] = {}
        for rid, a, b in spans:
            by.setdefault(rid, []).append((a, b))
        k = Knowledge.from_ranges(by)
    elif route == "versions":
        versions = sorted(model)
        random.Random(draw(seeds)).shuffle(versions)
        k = Knowledge.from_versions(versions)
    elif route == "add_range":
        k = Knowledge.empty()
        for rid, a, b in spans:
            k = k.add_range(rid, a, b)
    else:
        versions = sorted(model)
        random.Random(draw(seeds)).shuffle(versions)
        k = Knowledge.empty()
        for rid, t in versions:
            k = k.add(rid, t)
    return k, model


def model_of(k: Knowledge) -> Model:
    """Expand a knowledge through its public ranges (and check their shape)."""
    out = set()
    for rid in k.replicas():
        rs = k.ranges(rid)
        assert rs, "a listed replica must have ranges"
        for (_, hi), (nlo, _) in itertools.pairwise(rs):
            assert nlo > hi + 1, f"ranges {rs} overlap or touch"
        for lo, hi in rs:
            assert 1 <= lo <= hi
            out.update((rid, t) for t in range(lo, hi + 1))
    return frozenset(out)


def agrees(k: Knowledge, model: Model) -> None:
    assert model_of(k) == model
    probes = [(rid, t) for rid in [*RIDS, OTHER] for t in PROBE_TICKS]
    assert [v for v in probes if k.contains(*v)] == [v for v in probes if v in model]
    assert k.is_empty() == (not model)
    assert k.replicas() == sorted({rid for rid, _ in model})


def naive_floor(model: Model, rid: bytes) -> int:
    t = 0
    while (rid, t + 1) in model:
        t += 1
    return t


# Few @given tests, each checking several properties: Hypothesis's per-example
# overhead dominates here, and 300 examples of each must stay fast.


@SETTINGS
@given(knowledge(), knowledge(), knowledge())
def test_union_laws(a: tuple[Knowledge, Model], b: tuple[Knowledge, Model], c: tuple[Knowledge, Model]) -> None:
    x, y, z = a[0], b[0], c[0]
    assert x | y == y | x, "commutative"
    assert (x | y) | z == x | (y | z), "associative"
    assert x | x == x, "idempotent"
    assert x | Knowledge.empty() == x == Knowledge.empty() | x, "identity"


@SETTINGS
@given(knowledge(), knowledge())
def test_binary_operations_match_sets(a: tuple[Knowledge, Model], b: tuple[Knowledge, Model]) -> None:
    (x, sx), (y, sy) = a, b
    agrees(x, sx)
    agrees(x.union(y), sx | sy)
    agrees(x | y, sx | sy)
    agrees(x.project(y), sx & sy)
    agrees(x & y, sx & sy)
    agrees(x.exclude(y), sx - sy)
    agrees(x - y, sx - sy)
    assert x.contains_knowledge(y) == (sy <= sx)
    assert y.contains_knowledge(x) == (sx <= sy)
    assert (x | y).contains_knowledge(y)
    assert x.contains_knowledge(x & y)
    assert not (x - y).project(y).fragments()
    # Value semantics: equal exactly when the sets are, with equal hashes and bytes.
    assert (x == y) == (sx == sy)
    if x == y:
        assert hash(x) == hash(y)
        assert x.to_bytes() == y.to_bytes()


@SETTINGS
@given(knowledge(), rids, st.integers(-2, MAX_TICK + 2), st.integers(-2, MAX_TICK + 2))
def test_replica_operations_match_sets(a: tuple[Knowledge, Model], rid: bytes, first: int, last: int) -> None:
    k, model = a
    agrees(k.restrict(rid, first, last), frozenset(v for v in model if v[0] == rid and first <= v[1] <= last))
    agrees(k.without(rid), frozenset(v for v in model if v[0] != rid))
    lo = max(first, 1)
    agrees(k.add_range(rid, lo, last), model | {(rid, t) for t in range(lo, last + 1)})
    agrees(k.add(rid, lo), model | {(rid, lo)})


@SETTINGS
@given(knowledge())
def test_floor_and_fragments_match_model(a: tuple[Knowledge, Model]) -> None:
    k, model = a
    for rid in [*RIDS, OTHER]:
        assert k.floor(rid) == naive_floor(model, rid)
    runs = sum(1 for rid, t in model if (rid, t - 1) not in model)
    assert k.fragments() == runs


@SETTINGS
@given(knowledge())
def test_serialization_round_trips(a: tuple[Knowledge, Model]) -> None:
    k, model = a
    data = k.to_bytes()
    back = Knowledge.from_bytes(data)
    assert back == k
    assert back.to_bytes() == data
    agrees(back, model)
    probes = [(rid, t) for rid in [*RIDS, OTHER] for t in PROBE_TICKS]
    assert [v for v in probes if v in back] == [v for v in probes if v in model]  # the ``in`` operator
    assert Knowledge.from_wire(k.to_wire()) == k
    # As embedded in a batch: through msgpack and back as plain lists.
    wire = msgpack.unpackb(msgpack.packb(k.to_wire(), use_bin_type=True), raw=False)
    assert Knowledge.from_wire(wire) == k
