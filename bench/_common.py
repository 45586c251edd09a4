"""Shared pieces of the benchmark: sizes, the data generator, timers, results."""

from __future__ import annotations

import gc
import random
import statistics
import string
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

TABLE = "item"
COLUMNS = ("id", "name", "note", "qty", "price")
SCHEMA = f"CREATE TABLE {TABLE} (id INTEGER PRIMARY KEY, name TEXT, note TEXT, qty INTEGER, price REAL)"
SCOPE = "bench"
SEED = 20240601

Row = tuple[int, str, str, int, float]


@dataclass(frozen=True)
class Sizes:
    """How big each figure's data is; ``--quick`` shrinks everything."""

    rows: int  # N: initial sync, incremental, no-change, metadata, memory, provisioning
    small: int  # the incremental session's comparison table
    changed: int  # rows changed in an incremental session
    bulk: int  # rows per bulk INSERT/UPDATE/DELETE
    single: int  # autocommit single-row UPDATEs
    single_table: int  # rows in the table those UPDATEs hit
    wire_rows: int  # changed rows pushed to measure wire bytes
    replicas: int
    rounds: int  # random pairwise sessions among the replicas
    loop_changes: int  # changes made on P1 before the P1 -> P2 -> P3 -> P1 loop
    reps: int  # repetitions of the big timed things (best of)

    @classmethod
    def make(cls, rows: int | None, quick: bool) -> Sizes:
        n = rows if rows is not None else (20_000 if quick else 1_000_000)
        if n < 100:
            raise ValueError("--rows must be at least 100")
        small = 10_000 if n >= 100_000 else max(n // 10, 50)
        return cls(
            rows=n,
            small=small,
            changed=min(100, small // 2),
            bulk=min(20_000, n) if quick else 100_000,
            single=1_000 if quick else 5_000,
            single_table=min(20_000, n) if quick else 100_000,
            wire_rows=min(5_000, n // 2),
            replicas=20,
            rounds=60 if quick else 200,
            loop_changes=min(2_000, n) if quick else 10_000,
            reps=3,
        )


def generate(n: int, seed: int = SEED, start: int = 1) -> Iterator[Row]:
    """``n`` deterministic rows: int key, two texts (8-20 and 20-60 chars), an integer, a real."""
    rnd = random.Random(seed)
    pool = "".join(rnd.choices(string.ascii_letters + string.digits + "   ", k=1 << 16))
    span = len(pool) - 64
    r = rnd.random
    for i in range(start, start + n):
        o1, o2 = int(r() * span), int(r() * span)
        yield (
            i,
            pool[o1 : o1 + 8 + int(r() * 13)],
            pool[o2 : o2 + 20 + int(r() * 41)],
            int(r() * 100_000),
            round(r() * 1000, 2),
        )


def changed_values(keys: list[int], seed: int) -> list[tuple[str, str, int, float, int]]:
    """New (name, note, qty, price, id) for an UPDATE of each key."""
    fresh = generate(len(keys), seed=seed)
    return [(name, note, qty, price, k) for k, (_, name, note, qty, price) in zip(keys, fresh, strict=True)]


def timed(fn: Callable[[], Any]) -> float:
    gc.collect()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def median(xs: list[float]) -> float:
    return statistics.median(xs)


@dataclass
class Figure:
    """One row of the table; ``limit`` bounds ``ratio`` (``on="ratio"``) or the value itself."""

    number: str
    name: str
    unit: str  # s, ms, B/row, B, MiB, changes
    peersync: float | None
    baseline: float | None = None
    target: str = "report"
    limit: float | None = None  # target bound, applied to ``ratio`` or ``peersync`` (see ``on``)
    on: str = "ratio"  # "ratio" or "value"
    strict: bool = False  # "<" instead of "<="
    baseline_label: str = ""
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.peersync is None or not self.baseline:
            return None
        return self.peersync / self.baseline

    @property
    def verdict(self) -> str:
        if self.limit is None:
            return "-"
        x = self.ratio if self.on == "ratio" else self.peersync
        if x is None:
            return "-"
        ok = x < self.limit if self.strict else x <= self.limit
        return "meets" if ok else "misses"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(ratio=self.ratio, verdict=self.verdict)
        return d
