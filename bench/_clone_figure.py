"""Figure 12: a new replica from a snapshot (``peersync.clone``) against the
baseline copy of figure 1, and the first sync between the clone and its source."""

from __future__ import annotations

from typing import Any

import peersync
from _bench import Bench
from _common import SCOPE, Figure, timed


def fig_clone(b: Bench) -> list[Figure]:
    if b.kind.name != "sqlite":
        raise NotImplementedError("clone makes SQLite files only")
    n = b.sizes.rows
    src, base = b.source(n), b.base(n)
    # Figure 1's baseline copies when it ran in this process, else as many of our own.
    initial: dict[str, Any] | None = b._cache.get(("initial", n))
    copies = list(initial["copy"]) if initial else []
    clones = []
    dst = str(b.workdir / "clone.db")
    for i in range(b.sizes.reps):
        b.log(f"clone of {n:,} rows, run {i + 1}/{b.sizes.reps}")
        b.kind.drop(dst)
        clones.append(b.child("clone", src, dst))
        if not initial:
            copy = b.kind.clone(b.empty(), f"copy_{n}")
            copies.append(b.child("copy", base, copy))
            b.kind.drop(copy)
    with b.kind.connect(src) as a, b.kind.connect(dst) as c:
        result: list[peersync.SyncResult] = []
        first = timed(lambda: result.append(peersync.sync(a, c, SCOPE)))
        second = timed(lambda: peersync.sync(a, c, SCOPE))
    r = result[0]
    if (r.sent_a_to_b, r.sent_b_to_a) != (0, 0):
        raise RuntimeError(f"the first sync of a clone with its source sent {r.to_dict()}")
    b.kind.drop(dst)
    times = [x["seconds"] for x in clones]
    best = min(times)
    base_s = min(x["seconds"] for x in copies)
    return [
        Figure(
            "12",
            f"clone of {n:,} rows (new replica from a snapshot)",
            "s",
            best,
            base_s,
            "<= 0.5x",
            0.5,
            baseline_label="figure 1's sqlite3 fetchmany/executemany copy" + ("" if initial else ", run here"),
            note=(
                f"peersync.clone of the provisioned source in a fresh process; best of {len(clones)}"
                f" (all: {', '.join(f'{t:.2f}' for t in times)} s);"
                f" the first sync both ways with its source sent 0 rows in {first * 1000:,.0f} ms"
                f" (it reads every row the source does not know by the clone's id), the next in {second * 1000:.1f} ms"
            ),
        )
    ]
