"""Knowledge: the set of versions a replica has seen, and its algebra.

A version is ``(replica_id, tick)``: the replica that made a change and its
tick there. Knowledge maps each replica id to a sorted list of disjoint,
non-adjacent half-open tick ranges ``[lo, end)``. The range that starts at
tick 1 is the *clock vector* entry; any further range is a *range exception*.
Its size therefore grows with replicas and fragments, never with rows.

Every operation here is pure and returns a new value; ``Knowledge`` is
immutable and hashable-by-value (``==`` compares contents).

>>> k = Knowledge.empty().add_range(b"A" * 16, 1, 10).add(b"A" * 16, 15)
>>> k.contains(b"A" * 16, 10), k.contains(b"A" * 16, 11), k.floor(b"A" * 16)
(True, False, 10)
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping

import msgpack

from .errors import ProtocolError

Version = tuple[bytes, int]

# A flat tuple (lo1, end1, lo2, end2, ...): half-open ranges, sorted, disjoint
# and non-adjacent. Flat tuples make ``contains`` a single bisect: a tick lies
# inside a range exactly when the count of bounds <= tick is odd.
_Ranges = tuple[int, ...]

REPLICA_ID_BYTES = 16
MAX_TICK = 2**62  # ticks are SQLite integers; this leaves room for range ends


def _normalize(pairs: Iterable[tuple[int, int]]) -> _Ranges:
    out: list[int] = []
    for lo, end in sorted(p for p in pairs if p[1] > p[0]):
        if out and lo <= out[-1]:
            if end > out[-1]:
                out[-1] = end
        else:
            out.extend((lo, end))
    return tuple(out)


def _pairs(r: _Ranges) -> Iterator[tuple[int, int]]:
    return zip(r[0::2], r[1::2], strict=True)


def _union(a: _Ranges, b: _Ranges) -> _Ranges:
    if not a:
        return b
    if not b:
        return a
    return _normalize([*_pairs(a), *_pairs(b)])


def _intersect(a: _Ranges, b: _Ranges) -> _Ranges:
    out: list[int] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo = max(a[i], b[j])
        end = min(a[i + 1], b[j + 1])
        if lo < end:
            out.extend((lo, end))
        if a[i + 1] < b[j + 1]:
            i += 2
        else:
            j += 2
    return tuple(out)


def _subtract(a: _Ranges, b: _Ranges) -> _Ranges:
    out: list[int] = []
    j = 0
    for lo, end in _pairs(a):
        cur = lo
        while j < len(b) and b[j + 1] <= cur:
            j += 2
        k = j
        while k < len(b) and b[k] < end:
            if b[k] > cur:
                out.extend((cur, b[k]))
            cur = max(cur, b[k + 1])
            if cur >= end:
                break
            k += 2
        if cur < end:
            out.extend((cur, end))
    return tuple(out)


class Knowledge:
    """An immutable set of versions, stored as per-replica tick ranges.

    Raises :class:`ValueError` for ticks below 1 or replica ids that are not
    16 bytes; :meth:`from_bytes` raises :class:`~peersync.ProtocolError` for
    anything that is not a well-formed serialization.
    """

    __slots__ = ("_r",)

    def __init__(self, ranges: Mapping[bytes, _Ranges] | None = None) -> None:
        self._r: dict[bytes, _Ranges] = {k: v for k, v in (ranges or {}).items() if v}

    # -- construction -----------------------------------------------------
    @classmethod
    def empty(cls) -> Knowledge:
        return cls()

    @classmethod
    def from_versions(cls, versions: Iterable[Version]) -> Knowledge:
        by: dict[bytes, list[tuple[int, int]]] = {}
        for rid, tick in versions:
            _check(rid, tick)
            by.setdefault(rid, []).append((tick, tick + 1))
        return cls({rid: _normalize(p) for rid, p in by.items()})

    @classmethod
    def from_ranges(cls, ranges: Mapping[bytes, Iterable[tuple[int, int]]]) -> Knowledge:
        """Build from inclusive ``(first, last)`` tick ranges per replica."""
        out: dict[bytes, _Ranges] = {}
        for rid, pairs in ranges.items():
            plist = list(pairs)
            for lo, hi in plist:
                _check(rid, lo)
                _check(rid, hi)
            out[rid] = _normalize((lo, hi + 1) for lo, hi in plist)
        return cls(out)

    # -- queries -------------------------------------------------------------
    def contains(self, replica: bytes, tick: int) -> bool:
        r = self._r.get(replica)
        return r is not None and bisect_right(r, tick) & 1 == 1

    def __contains__(self, version: object) -> bool:
        if not isinstance(version, tuple) or len(version) != 2:
            return False
        return self.contains(version[0], version[1])

    def floor(self, replica: bytes) -> int:
        """Highest tick ``t`` such that every tick ``1..t`` of ``replica`` is known."""
        r = self._r.get(replica)
        if r and r[0] == 1:
            return r[1] - 1
        return 0

    def ranges(self, replica: bytes) -> list[tuple[int, int]]:
        """Inclusive ``(first, last)`` ranges known for ``replica``."""
        return [(lo, end - 1) for lo, end in _pairs(self._r.get(replica, ()))]

    def replicas(self) -> list[bytes]:
        return sorted(self._r)

    def fragments(self) -> int:
        """Number of ranges in all (one per replica when there are no exceptions)."""
        return sum(len(r) // 2 for r in self._r.values())

    def contains_knowledge(self, other: Knowledge) -> bool:
        """True when every version in ``other`` is in ``self``."""
        return all(not _subtract(r, self._r.get(rid, ())) for rid, r in other._r.items())

    def is_empty(self) -> bool:
        return not self._r

    # -- algebra ---------------------------------------------------------------
    def union(self, other: Knowledge) -> Knowledge:
        out = dict(self._r)
        for rid, r in other._r.items():
            out[rid] = _union(out.get(rid, ()), r)
        return Knowledge(out)

    __or__ = union

    def project(self, other: Knowledge) -> Knowledge:
        """The versions in both: restrict ``self`` to what ``other`` covers."""
        return Knowledge({rid: _intersect(r, o) for rid, r in self._r.items() if (o := other._r.get(rid))})

    __and__ = project

    def exclude(self, other: Knowledge) -> Knowledge:
        """The versions of ``self`` that are not in ``other``."""
        return Knowledge({rid: _subtract(r, o) if (o := other._r.get(rid)) else r for rid, r in self._r.items()})

    __sub__ = exclude

    def add(self, replica: bytes, tick: int) -> Knowledge:
        return self.add_range(replica, tick, tick)

    def add_range(self, replica: bytes, first: int, last: int) -> Knowledge:
        """Add the inclusive tick range ``first..last`` (nothing if empty)."""
        if last < first:
            return self
        _check(replica, first)
        out = dict(self._r)
        out[replica] = _union(out.get(replica, ()), (first, last + 1))
        return Knowledge(out)

    def restrict(self, replica: bytes, first: int, last: int) -> Knowledge:
        """Only the versions of ``replica`` with ticks in ``first..last``."""
        r = self._r.get(replica, ())
        return Knowledge({replica: _intersect(r, (max(first, 1), last + 1))} if last >= first else {})

    def without(self, replica: bytes) -> Knowledge:
        """Everything but ``replica``'s versions."""
        return Knowledge({k: v for k, v in self._r.items() if k != replica})

    # -- value semantics ----------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        return isinstance(other, Knowledge) and self._r == other._r

    def __hash__(self) -> int:
        return hash(frozenset(self._r.items()))

    def __repr__(self) -> str:
        return f"Knowledge({self.describe()})"

    def describe(self, names: Mapping[bytes, str] | None = None) -> str:
        """Readable form: ``ab12cd34:1-500,+510-520``; ``{}`` when empty."""
        if not self._r:
            return "{}"
        parts = []
        for rid in sorted(self._r):
            label = (names or {}).get(rid, rid.hex()[:8])
            spans = ",".join(f"{lo}-{end - 1}" if end - lo > 1 else f"{lo}" for lo, end in _pairs(self._r[rid]))
            parts.append(f"{label}:{spans}")
        return " ".join(parts)

    def to_dict(self) -> dict[str, list[list[int]]]:
        """JSON-friendly form: hex replica id -> inclusive ranges."""
        return {rid.hex(): [[lo, hi] for lo, hi in self.ranges(rid)] for rid in sorted(self._r)}

    # -- serialization -------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """Compact msgpack: a list of ``[replica_id, lo, len, gap, len, ...]``.

        Ranges are delta-encoded so small integers dominate; the clock vector
        entry of a replica with no exceptions costs about 22 bytes.
        """
        out: bytes = msgpack.packb(self.to_wire(), use_bin_type=True)
        return out

    @classmethod
    def from_bytes(cls, data: bytes) -> Knowledge:
        try:
            rows = msgpack.unpackb(data, raw=False, strict_map_key=True)
        except Exception as exc:  # msgpack raises several unrelated types
            raise ProtocolError(f"malformed knowledge: {exc}") from exc
        return cls.from_wire(rows)

    @classmethod
    def from_wire(cls, rows: object) -> Knowledge:
        """Validate and build from the decoded msgpack structure."""
        if not isinstance(rows, list):
            raise ProtocolError("malformed knowledge: not a list")
        out: dict[bytes, _Ranges] = {}
        for row in rows:
            if not isinstance(row, list) or len(row) % 2 != 1 or len(row) < 3:
                raise ProtocolError("malformed knowledge: bad replica entry")
            rid = row[0]
            if not isinstance(rid, bytes) or len(rid) != REPLICA_ID_BYTES or rid in out:
                raise ProtocolError("malformed knowledge: bad replica id")
            flat: list[int] = []
            prev = 0
            for gap, length in zip(row[1::2], row[2::2], strict=True):
                if type(gap) is not int or type(length) is not int or length < 1:
                    raise ProtocolError("malformed knowledge: bad range")
                if gap < 1:  # ranges start at tick 1 and never touch or overlap
                    raise ProtocolError("malformed knowledge: overlapping ranges")
                lo = prev + gap
                if lo + length > MAX_TICK:
                    raise ProtocolError("malformed knowledge: tick out of range")
                flat.extend((lo, lo + length))
                prev = lo + length
            out[rid] = tuple(flat)
        return cls(out)

    def to_wire(self) -> list[list[bytes | int]]:
        """The structure :meth:`to_bytes` packs, for embedding in a batch."""
        rows = []
        for rid in sorted(self._r):
            row: list[bytes | int] = [rid]
            prev = 0
            for lo, end in _pairs(self._r[rid]):
                row.extend((lo - prev, end - lo))
                prev = end
            rows.append(row)
        return rows


def _check(replica: bytes, tick: int) -> None:
    if not isinstance(replica, bytes) or len(replica) != REPLICA_ID_BYTES:
        raise ValueError("replica id must be 16 bytes")
    if tick < 1:
        raise ValueError("ticks start at 1")
