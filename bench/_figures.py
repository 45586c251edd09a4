"""The figures of issue 3, each measured against a baseline taken in the same run.

Each ``fig_*`` function takes the :class:`Bench` (data, peer kind, sizes) and
returns :class:`Figure` rows. ``FIGURES`` lists them in the order they run:
figures that share data run so that none sees another's leftovers (the
metadata figure reads the synced pair before the incremental figure edits it).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import msgpack

import peersync
from _bench import Bench
from _clone_figure import fig_clone
from _common import COLUMNS, SCOPE, TABLE, Figure, changed_values, generate, median, timed

MIB = 1024 * 1024


def _n(x: int) -> str:
    return f"{x:,}"


# -- 1 and 8: initial sync, time and memory ---------------------------------------------------
def fig_initial_sync(b: Bench) -> list[Figure]:
    n = b.sizes.rows
    runs = b.initial_runs(n)
    best = min(r["seconds"] for r in runs["sync"])
    base = min(r["seconds"] for r in runs["copy"])
    last = runs["sync"][-1]
    fastest = min(runs["sync"], key=lambda r: r["seconds"])
    all_syncs = ", ".join(f"{r['seconds']:.2f}" for r in runs["sync"])
    all_copies = ", ".join(f"{r['seconds']:.2f}" for r in runs["copy"])
    clis = b.cli_runs(n)
    cli = min(r["seconds"] for r in clis)
    all_clis = ", ".join(f"{r['seconds']:.2f}" for r in clis)
    cli_cpu = min(clis, key=lambda r: r["seconds"])["cpu_seconds"]
    return [
        Figure(
            "1",
            f"initial sync, {_n(n)} rows",
            "s",
            best,
            base,
            "<= 2x",
            2.0,
            baseline_label="sqlite3 fetchmany/executemany copy, one transaction",
            note=(
                f"SQLite -> empty SQLite, one push session in a fresh process; best of {len(runs['sync'])}"
                f" (all: {all_syncs} s; baseline: {all_copies} s);"
                f" {best and n / best:,.0f} rows/s vs {base and n / base:,.0f} rows/s;"
                f" {last['batches']} batches, {last['bytes'] / MIB:.1f} MiB on the wire;"
                f" the best run used {fastest['cpu_seconds']:.2f} s of CPU, the best copy"
                f" {min(runs['copy'], key=lambda r: r['seconds'])['cpu_seconds']:.2f} s"
            ),
        ),
        Figure(
            "1c",
            f"initial sync through the CLI, {_n(n)} rows",
            "s",
            cli,
            base,
            "<= 2.5x",
            2.5,
            baseline_label="the same copy as figure 1",
            note=(
                f"'peersync sync SRC DST --scope S --direction push' timed from process start to exit"
                f" (both provisioned before; peersync's bytecode compiled before, as pip installs it);"
                f" best of {len(clis)} (all: {all_clis} s); the best run used {cli_cpu:.2f} s of CPU"
            ),
        ),
    ]


def fig_memory(b: Bench) -> list[Figure]:
    n = b.sizes.rows
    tenth = max(n // 10, 10)
    big, small = b.initial_runs(n), b.initial_runs(tenth)

    def grown(runs: list[dict[str, Any]]) -> float:
        return max(r["grown_kib"] for r in runs) / 1024

    def peak(runs: list[dict[str, Any]]) -> float:
        return max(r["peak_kib"] for r in runs) / 1024

    how = "resident-set growth (VmHWM - VmRSS before), max over runs, each run in a fresh process"
    return [
        Figure(
            "8",
            f"peak memory, sync {_n(n)} vs {_n(tenth)} rows",
            "MiB",
            grown(big["sync"]),
            grown(small["sync"]),
            "<= 1.2x",
            1.2,
            baseline_label=f"peersync's own initial sync of {_n(tenth)} rows",
            note=f"{how}; whole-process peaks {peak(big['sync']):.1f} vs {peak(small['sync']):.1f} MiB",
        ),
        Figure(
            "8b",
            f"peak memory, sync vs copy of {_n(n)} rows",
            "MiB",
            grown(big["sync"]),
            grown(big["copy"]),
            baseline_label="the baseline copy's peak, same measure",
            note=f"{how}; copy whole-process peak {peak(big['copy']):.1f} MiB",
        ),
    ]


# -- 2 and 3: incremental and empty sessions ------------------------------------------------------
def _settled(b: Bench, n: int) -> tuple[peersync.Database, peersync.Database, float]:
    """The synced pair of ``n`` rows, open, after one full two-way sync (timed:
    the first sync after an initial sync)."""

    def make() -> tuple[peersync.Database, peersync.Database, float]:
        src, dst = b.synced_pair(n)
        a, d = b.connect(src), b.connect(dst)
        return a, d, timed(lambda: peersync.sync(a, d, SCOPE))

    out: tuple[peersync.Database, peersync.Database, float] = b.once(("settled", n), make)
    return out


def fig_incremental(b: Bench) -> list[Figure]:
    """Figures 2 and 2b: a session's cost follows the changes, not the table's size
    (docs/design.md, "Promises": cost follows changes)."""
    s = b.sizes
    reps = 15  # cheap, and a session's few commits are at the mercy of the disk
    medians, settles, plain = {}, {}, {}
    for n in (s.rows, s.small):
        a, d, settles[n] = _settled(b, n)
        src = b.synced_pair(n)[0]
        # The same writes on an unprovisioned copy show what plain SQLite pays
        # for touching random rows of a bigger table (deeper trees, fewer
        # changed rows per page), which no sync engine can avoid.
        unprovisioned = b.kind.clone(b.base(n), f"plain_{n}")
        rnd = random.Random(n)
        times, writes = [], []
        b.log(f"incremental sessions on {n:,} rows")
        for rep in range(reps):
            keys = rnd.sample(range(1, n + 1), s.changed)
            b.update(src, keys, seed=1000 + rep)
            writes.append(timed(lambda keys=keys, rep=rep, db=unprovisioned: b.update(db, keys, seed=1000 + rep)))
            result: list[peersync.SyncResult] = []
            times.append(timed(lambda a=a, d=d, result=result: result.append(peersync.sync(a, d, SCOPE))))
            if result[0].sent_a_to_b != s.changed or result[0].sent_b_to_a != 0:
                raise RuntimeError(f"incremental session sent {result[0].to_dict()}")
        medians[n], plain[n] = median(times), median(writes)
        b.kind.drop(unprovisioned)
    return [
        Figure(
            "2",
            f"incremental, {s.changed} changed in {_n(s.rows)} rows",
            "ms",
            medians[s.rows] * 1000,
            medians[s.small] * 1000,
            "<= 1.5x",
            1.5,
            baseline_label=f"the same in a {_n(s.small)}-row table",
            note=(
                f"sync(a, b) both ways after a foreign writer's UPDATE of {s.changed} random rows; median of {reps};"
                f" for scale, that UPDATE transaction on an unprovisioned copy takes {plain[s.rows] * 1000:.1f} ms"
                f" at {_n(s.rows)} rows vs {plain[s.small] * 1000:.1f} ms at {_n(s.small)}"
                f" ({plain[s.rows] / plain[s.small]:.2f}x)"
            ),
        ),
        Figure(
            "2b",
            f"first sync after the initial sync, {_n(s.rows)} rows",
            "ms",
            settles[s.rows] * 1000,
            settles[s.small] * 1000,
            baseline_label=f"the same after an initial sync of {_n(s.small)} rows",
            note="sync(a, b) both ways with no new changes, right after the initial push (one run; not in issue 3)",
        ),
    ]


def fig_no_change(b: Bench) -> list[Figure]:
    """Figure 3: a session with nothing to send costs milliseconds whatever the table's
    size (docs/design.md, "Promises": cost follows changes)."""
    n = b.sizes.rows
    a, d, _ = _settled(b, n)
    peersync.sync(a, d, SCOPE)
    both, push = [], []
    for _ in range(21):
        both.append(timed(lambda: peersync.sync(a, d, SCOPE)))
        push.append(timed(lambda: peersync.sync(a, d, SCOPE, direction="push")))
    return [
        Figure(
            "3",
            f"session with no changes, {_n(n)} rows",
            "ms",
            median(both) * 1000,
            None,
            "< 20 ms",
            20.0,
            on="value",
            strict=True,
            note=(
                f"sync(a, b) both ways (two sessions) on open databases, median of {len(both)}"
                f" (min {min(both) * 1000:.1f}, max {max(both) * 1000:.1f} ms); one-way push median"
                f" {median(push) * 1000:.1f} ms"
            ),
        )
    ]


# -- 4 and 5: local write overhead -------------------------------------------------------------
def fig_bulk_writes(b: Bench) -> list[Figure]:
    s, kind = b.sizes, b.kind
    plain = kind.create("bulk_plain")
    tracked = kind.clone(plain, "bulk_tracked")
    kind.provision(tracked)
    p = kind.placeholder
    rows = list(generate(s.bulk, seed=7))
    updates = changed_values([r[0] for r in rows], seed=8)
    deletes = [(r[0],) for r in rows]
    phases = [
        ("INSERT", f"INSERT INTO {TABLE} VALUES ({', '.join([p] * len(COLUMNS))})", rows),
        ("UPDATE", f"UPDATE {TABLE} SET name = {p}, note = {p}, qty = {p}, price = {p} WHERE id = {p}", updates),
        ("DELETE", f"DELETE FROM {TABLE} WHERE id = {p}", deletes),
    ]
    best: dict[tuple[str, str], float] = {}
    settings = ""
    for rep in range(s.reps):
        b.log(f"bulk writes of {s.bulk:,} rows, run {rep + 1}/{s.reps}")
        order = [("plain", plain), ("tracked", tracked)]
        for variant, template in order if rep % 2 == 0 else reversed(order):
            db = kind.clone(template, f"bulk_{variant}_run")
            conn = kind.raw(db)
            settings = kind.tune_small_transactions(conn)
            for phase, sql, params in phases:

                def run(conn: Any = conn, sql: str = sql, params: list[Any] = params) -> None:
                    with conn:
                        conn.executemany(sql, params)

                t = timed(run)
                best[variant, phase] = min(t, best.get((variant, phase), t))
            conn.close()
            kind.drop(db)
    return [
        Figure(
            f"4{letter}",
            f"bulk {phase} overhead, {_n(s.bulk)} rows",
            "s",
            best["tracked", phase],
            best["plain", phase],
            "<= 2.5x",
            2.5,
            baseline_label="the same statements on an unprovisioned table",
            note=(
                f"executemany, one transaction per statement kind, by a plain sqlite3 connection ({settings});"
                f" INSERT into an empty table, then UPDATE and DELETE of those rows; best of {s.reps}"
            )
            if letter == "a"
            else "",
        )
        for letter, (phase, _, _) in zip("abc", phases, strict=True)
    ]


def fig_single_writes(b: Bench) -> list[Figure]:
    s, kind = b.sizes, b.kind
    plain = kind.clone(b.base(s.single_table), "single_plain")
    tracked = kind.clone(plain, "single_tracked")
    kind.provision(tracked)
    p = kind.placeholder
    sql = f"UPDATE {TABLE} SET qty = qty + 1, price = {p} WHERE id = {p}"
    conns = {"plain": kind.raw(plain, autocommit=True), "tracked": kind.raw(tracked, autocommit=True)}
    settings = ""
    for conn in conns.values():
        settings = kind.tune_small_transactions(conn)
    rnd = random.Random(5)
    times: dict[str, list[float]] = {"plain": [], "tracked": []}
    reps = 5
    b.log(f"single-row transactions: {reps} x {s.single:,} UPDATEs each way")
    for rep in range(reps):
        params = [(round(rnd.random() * 1000, 2), rnd.randint(1, s.single_table)) for _ in range(s.single)]
        for variant in ("plain", "tracked") if rep % 2 == 0 else ("tracked", "plain"):
            conn = conns[variant]

            def run(conn: Any = conn, params: list[tuple[float, int]] = params) -> None:
                for args in params:
                    conn.execute(sql, args)

            times[variant].append(timed(run))
    for conn in conns.values():
        conn.close()
    return [
        Figure(
            "5",
            f"single-row UPDATE overhead, {_n(s.single)} txns",
            "s",
            median(times["tracked"]),
            median(times["plain"]),
            "<= 1.2x",
            1.2,
            baseline_label="the same on an unprovisioned copy",
            note=(
                f"autocommit UPDATEs of random rows of a {_n(s.single_table)}-row table by a plain sqlite3 connection,"
                f" {settings}; median of {reps} runs, alternating which goes first"
            ),
        )
    ]


# -- 6: tracking metadata on disk ---------------------------------------------------------------
def _split(objects: dict[str, int]) -> tuple[int, int]:
    """(bytes of peersync's objects, bytes of the table and its indexes)."""
    ours = sum(v for k, v in objects.items() if "_peersync_" in k)
    own = sum(v for k, v in objects.items() if k == TABLE or k.startswith(f"sqlite_autoindex_{TABLE}_"))
    return ours, own


def fig_metadata(b: Bench) -> list[Figure]:
    """Per-row overhead: every peersync object's bytes at N rows minus those of
    a freshly provisioned empty database, so whatever peersync names its
    per-table structures, and its fixed tables are not spread over the rows."""
    n = b.sizes.rows
    src, dst = b.synced_pair(n)
    fixed, _ = _split(b.kind.storage(b.empty_provisioned()))
    out = []
    for number, label, db, how in (
        ("6a", "provisioned table", src, "rows that existed at provisioning (local versions)"),
        ("6b", "synced copy", dst, "rows received by the initial sync (origin versions)"),
    ):
        ours, own = _split(b.kind.storage(db))
        out.append(
            Figure(
                number,
                f"tracking bytes/row, {label}",
                "B/row",
                (ours - fixed) / n,
                own / n,
                "<= 40 B/row",
                40.0,
                on="value",
                baseline_label="the table's own bytes/row",
                note=(
                    f"dbstat: (peersync objects - those of an empty provisioned database) / {_n(n)} rows: {how};"
                    f" the empty database's peersync objects take {fixed:,} bytes"
                ),
            )
        )
    return out


# -- 7: bytes on the wire -----------------------------------------------------------------------
class _Capture:
    """A destination that keeps every encoded batch it receives."""

    def __init__(self, peer: peersync.Database) -> None:
        self.peer, self.url, self.batches = peer, peer.url, list[bytes]()

    def apply(self, scope: str, data: bytes, handler: Any) -> Any:
        self.batches.append(data)
        return self.peer.apply(scope, data, handler)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.peer, name)


_TABLES = 10


def _header_bytes(data: bytes) -> int:
    """A batch's size with its rows removed. Relies only on the documented
    layout (``peersync._engine.wire``): item 10 of the envelope lists the tables, and
    each table entry is an array whose last item lists its rows."""
    env = msgpack.unpackb(data, raw=False)
    for entry in env[_TABLES]:
        entry[-1] = []
    return len(msgpack.packb(env, use_bin_type=True))


def fig_wire(b: Bench) -> list[Figure]:
    s = b.sizes
    a, d, _ = _settled(b, s.rows)
    src = b.synced_pair(s.rows)[0]
    keys = random.Random(77).sample(range(1, s.rows + 1), s.wire_rows)
    b.update(src, keys, seed=77)
    capture = _Capture(d)
    pushed = peersync.sync(a, capture, SCOPE, direction="push")  # type: ignore[arg-type]
    if pushed.sent_a_to_b != len(keys) or sum(map(len, capture.batches)) != pushed.bytes:
        raise RuntimeError(f"wire push sent {pushed.to_dict()}")
    headers = sum(_header_bytes(data) for data in capture.batches)
    if not 0 < headers < sum(map(len, capture.batches)) // 2:
        raise RuntimeError(f"batch headers measured as {headers} bytes: has the batch layout changed?")
    conn = b.kind.raw(src)
    p = b.kind.placeholder
    values = 0
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        cur = conn.execute(
            f"SELECT {', '.join(COLUMNS)} FROM {TABLE} WHERE id IN ({', '.join([p] * len(chunk))})", chunk
        )
        values += sum(len(msgpack.packb(list(r))) for r in cur)
    conn.close()
    nbatches = len(capture.batches)
    return [
        Figure(
            "7",
            f"wire bytes per changed row, {_n(len(keys))} rows",
            "B/row",
            (pushed.bytes - headers) / len(keys),
            values / len(keys),
            "<= 1.3x",
            1.3,
            baseline_label="msgpack.packb(list(values)) of the same rows",
            note=(
                f"(SyncResult.bytes - batch headers) / rows, push of {_n(len(keys))} random rows updated by a"
                f" foreign writer ({nbatches} batch(es), {pushed.bytes:,} bytes)"
            ),
        ),
        Figure(
            "7b",
            "wire batch header",
            "B",
            headers / max(nbatches, 1),
            None,
            note="mean size of those batches with their rows removed (scope, ids, fingerprint, made-with knowledge)",
        ),
    ]


# -- 9 and 10: knowledge size, loops ------------------------------------------------------------
def fig_knowledge(b: Bench) -> list[Figure]:
    s, kind = b.sizes, b.kind
    template = kind.create("k_empty")
    dbs = []
    for i in range(s.replicas):
        db = kind.clone(template, f"k_{i}")
        kind.provision(db)
        dbs.append(db)
    peers = [b.connect(db) for db in dbs]
    rnd = random.Random(9)
    p = kind.placeholder
    made = [0] * s.replicas
    values = generate(s.rounds * 3, seed=9)
    b.log(f"{s.rounds} random pairwise sessions among {s.replicas} replicas")
    for _ in range(s.rounds):
        i, j = rnd.sample(range(s.replicas), 2)
        conn = kind.raw(dbs[i])
        with conn:
            for _ in range(3):
                made[i] += 1
                row = ((i + 1) * 1_000_000 + made[i], *next(values)[1:])
                conn.execute(f"INSERT INTO {TABLE} VALUES ({', '.join([p] * len(COLUMNS))})", row)
            ids = [r[0] for r in conn.execute(f"SELECT id FROM {TABLE} ORDER BY random() LIMIT 2")]
            conn.executemany(f"UPDATE {TABLE} SET qty = qty + 1 WHERE id = {p}", [(k,) for k in ids])
        conn.close()
        peersync.sync(peers[i], peers[j], SCOPE)
    infos = [peer.describe(SCOPE).knowledge for peer in peers]
    sizes = [len(k.to_bytes()) for k in infos]
    named = [len(k.replicas()) for k in infos]
    per = [size / max(m, 1) for size, m in zip(sizes, named, strict=True)]
    return [
        Figure(
            "9",
            f"knowledge bytes per replica, {s.replicas} replicas",
            "B",
            max(per),
            None,
            "<= 64 B",
            64.0,
            on="value",
            note=(
                f"len(Knowledge.to_bytes()) / replicas it names, worst of the {s.replicas} after {s.rounds} random"
                f" pairwise syncs (each after 3 inserts and 2 updates on one side); totals {min(sizes)}-{max(sizes)}"
                f" bytes naming {min(named)}-{max(named)} replicas, at most"
                f" {max(k.fragments() - len(k.replicas()) for k in infos)} range exceptions"
            ),
        )
    ]


def fig_loop(b: Bench) -> list[Figure]:
    """Figure 10: changes made on P1 go round P1 -> P2 -> P3 -> P1 and none comes back
    to P1 (docs/design.md, "Promises": no redundancy)."""
    s, kind = b.sizes, b.kind
    n = s.loop_changes
    p1 = kind.create("loop_1", generate(n))
    p2, p3 = kind.create("loop_2"), kind.create("loop_3")
    for db in (p1, p2, p3):
        kind.provision(db)
    peers = [b.connect(db) for db in (p1, p2, p3)]

    def loop() -> list[int]:
        return [peersync.sync(peers[i], peers[(i + 1) % 3], SCOPE, direction="push").sent_a_to_b for i in range(3)]

    setup = loop()
    rnd = random.Random(10)
    keys = rnd.sample(range(1, n + 1), n * 9 // 10)
    updated, deleted = keys[: n * 8 // 10], keys[n * 8 // 10 :]
    inserted = n - len(updated) - len(deleted)
    b.update(p1, updated, seed=11)
    p = kind.placeholder
    conn = kind.raw(p1)
    with conn:
        conn.executemany(f"DELETE FROM {TABLE} WHERE id = {p}", [(k,) for k in deleted])
        conn.executemany(
            f"INSERT INTO {TABLE} VALUES ({', '.join([p] * len(COLUMNS))})", generate(inserted, seed=12, start=n + 1)
        )
    conn.close()
    sent = loop()
    if sent[0] != n:
        raise RuntimeError(f"P1 -> P2 sent {sent[0]} changes, expected {n}")
    return [
        Figure(
            "10",
            f"P1 -> P2 -> P3 -> P1, {_n(n)} changes on P1",
            "changes",
            sent[2],
            None,
            "0",
            0.0,
            on="value",
            note=(
                f"push sessions; sent along the loop: {', '.join(map(str, sent))}"
                f" ({len(updated)} updates, {len(deleted)} deletes, {inserted} inserts);"
                f" the setup loop over {_n(n)} initial rows sent {', '.join(map(str, setup))}"
            ),
        )
    ]


# -- 11: provisioning ---------------------------------------------------------------------------
def fig_provision(b: Bench) -> list[Figure]:
    n, kind = b.sizes.rows, b.kind
    base = b.base(n)
    prov, copy = [], []
    for rep in range(b.sizes.reps):
        b.log(f"provisioning {n:,} rows, run {rep + 1}/{b.sizes.reps}")
        db = kind.clone(base, "prov_run")
        with kind.connect(db) as peer:
            prov.append(timed(lambda peer=peer: peer.provision(SCOPE, [TABLE])))
        kind.drop(db)
        db = kind.clone(base, "copy_run")
        copy.append(timed(lambda db=db: kind.copy_table(db)))
        kind.drop(db)
    return [
        Figure(
            "11",
            f"provisioning {_n(n)} existing rows",
            "s",
            min(prov),
            min(copy),
            "<= 3x",
            3.0,
            baseline_label="CREATE TABLE + INSERT INTO ... SELECT, same file, one transaction",
            note=f"Database.provision on an open database; best of {len(prov)}",
        )
    ]


# Run order (not display order): 6 reads the synced pair before 2, 3 and 7 change it.
FIGURES: dict[str, Callable[[Bench], list[Figure]]] = {
    "initial-sync": fig_initial_sync,
    "memory": fig_memory,
    "metadata": fig_metadata,
    "incremental": fig_incremental,
    "no-change": fig_no_change,
    "wire": fig_wire,
    "provision": fig_provision,
    "bulk-writes": fig_bulk_writes,
    "single-writes": fig_single_writes,
    "knowledge": fig_knowledge,
    "loop": fig_loop,
    "clone": fig_clone,
}


def run_figures(b: Bench, names: list[str]) -> list[Figure]:
    out: list[Figure] = []
    for name in FIGURES:
        if name in names:
            t0 = time.perf_counter()
            try:
                out.extend(FIGURES[name](b))
            except NotImplementedError as exc:  # the peer kind cannot measure this one
                b.log(f"{name} skipped: {exc}")
                continue
            b.log(f"{name} done in {time.perf_counter() - t0:.1f} s")
    return out
