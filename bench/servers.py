"""Speed on servers (issue 8, item 7): every figure for PostgreSQL and MariaDB
against a baseline measured in the same run on the same rows.

    python bench/servers.py                        # 1,000,000 rows, both servers
    python bench/servers.py --rows 100000 --server pg --only initial,no-change
    python bench/servers.py --seconds 10           # the concurrent writers' run

Servers: ``$PEERSYNC_PG_URL`` and ``$PEERSYNC_MYSQL`` (see ``bench/_servers.py``);
every measurement makes its own database and drops it. Figures per server:

- ``initial``: initial sync of N rows SQLite -> server (provisioning excluded)
  vs the driver's own bulk load of the same rows read from the same SQLite
  file; then server -> SQLite vs a plain read (server-side cursor) and
  ``executemany`` into an empty SQLite table; on PostgreSQL also of rows
  made on the server (loaded, then provisioned over: its own changes);
- ``incremental``: a foreign writer changes 100 rows, then one session
  (median of 9), in the N-row pair vs a 10,000-row pair, both directions;
- ``no-change``: a session with nothing to send, connections open (median
  of 15), both directions;
- ``triggers``: write overhead of the triggers against the untracked table:
  a bulk insert of 100,000 rows (``COPY`` / multi-row ``INSERT``), a bulk
  ``UPDATE`` of them, and 2,000 single-row autocommit ``UPDATE``\\s;
- ``writers``: 8 threads of autocommit single-row upserts on random keys of
  100,000 rows for ``--seconds``, untracked, tracked, and tracked while
  server -> SQLite sessions run back to back.

``--hold-read-view`` (MariaDB) keeps a transaction with a consistent
snapshot open on the server for the whole run, as a long report or a dump
does: InnoDB purges nothing meanwhile, on any database of the server.

Progress goes to stderr, the table to stdout; ``uptime`` is printed before
and after (the machine may be shared: compare ratios, not times).
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import peersync
from _common import COLUMNS, SCHEMA, SCOPE, TABLE, changed_values, generate
from _servers import SERVERS

FIGURES = ("initial", "incremental", "no-change", "triggers", "writers")
Result = tuple[str, str, float | None, float | None, str, str]  # server, figure, peersync, baseline, unit, target


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def sqlite_db(path: str, rows: int, provision: bool = True) -> str:
    if os.path.exists(path):
        os.remove(path)
    conn = sqlite3.connect(path)
    conn.execute(SCHEMA)
    with conn:
        conn.executemany(f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?)", generate(rows))
    conn.close()
    if provision:
        with peersync.connect(path) as db:
            db.provision(SCOPE, [TABLE])
    return path


def push(src: str, dst: str) -> float:
    """Seconds for one session ``src`` -> ``dst`` (connecting included)."""
    t = time.perf_counter()
    with peersync.connect(src) as a, peersync.connect(dst) as b:
        peersync.sync(a, b, SCOPE, direction="push")
    return time.perf_counter() - t


def show(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit == "/s":
        return f"{v:,.0f}/s"
    return f"{v:.3f} s" if unit == "s" else f"{v:.1f} ms"


def cpu() -> float:
    r = os.times()
    return r.user + r.system


class Run:
    def __init__(self, server: Any, rows: int, folder: str, seconds: float, threads: int) -> None:
        self.s, self.rows, self.folder, self.seconds, self.threads = server, rows, folder, seconds, threads
        self.out: list[Result] = []

    def add(self, figure: str, mine: float | None, base: float | None, unit: str, target: str = "report") -> None:
        self.out.append((self.s.name, figure, mine, base, unit, target))
        ratio = f" = {mine / base:.2f}x" if mine is not None and base else ""
        log(f"  {self.s.name}: {figure}: {mine} vs {base} {unit}{ratio}")

    def provisioned(self, url: str) -> str:
        with peersync.connect(url) as db:
            db.provision(SCOPE, [TABLE])
        return url

    # -- initial sync, incremental and no-change sessions ---------------------------
    def sessions(self, figures: list[str]) -> None:
        s, n = self.s, self.rows
        src = sqlite_db(os.path.join(self.folder, "src.db"), n)
        with s.database() as plain:
            t = time.perf_counter()
            reader = sqlite3.connect(src)
            s.bulk_load(plain, reader.execute(f"SELECT {', '.join(COLUMNS)} FROM {TABLE}"))
            reader.close()
            copy = time.perf_counter() - t
        if hasattr(s, "load_data"):
            with s.database() as plain:
                t = time.perf_counter()
                reader = sqlite3.connect(src)
                s.load_data(plain, reader.execute(f"SELECT {', '.join(COLUMNS)} FROM {TABLE}"))
                reader.close()
                self.add(f"LOAD DATA LOCAL of {n:,} rows (vs multi-row INSERT)", time.perf_counter() - t, copy, "s")
        with s.database() as big:
            self.provisioned(big)
            c0 = cpu()
            into = push(src, big)
            self.add(f"initial sync SQLite -> {s.name}, {n:,} rows (vs bulk load)", into, copy, "s", "<= 3x")
            self.add("  the same, CPU seconds of this process", cpu() - c0, None, "s")
            dst = sqlite_db(os.path.join(self.folder, "dst.db"), 0)
            c0 = cpu()
            out = push(big, dst)
            spent = cpu() - c0
            plain = sqlite_db(os.path.join(self.folder, "plain.db"), 0, provision=False)
            t = time.perf_counter()
            self.read_into(big, plain)
            read = time.perf_counter() - t
            self.add(f"initial sync {s.name} -> SQLite, {n:,} rows (vs read + insert)", out, read, "s", "<= 3x")
            self.add("  the same, CPU seconds of this process", spent, None, "s")
            if s.key == "pg":
                self.made_on_server(src, read)
            if "incremental" in figures or "no-change" in figures:
                self.small_and_big(big, src, dst, figures)

    def made_on_server(self, src: str, read: float) -> None:
        """The rows above came from SQLite, so their versions are SQLite's and
        travel spelled out; rows made on the server (here: loaded, then
        provisioned over) are its own local changes, sent in the short form."""
        s, n = self.s, self.rows
        with s.database() as own:
            reader = sqlite3.connect(src)
            s.bulk_load(own, reader.execute(f"SELECT {', '.join(COLUMNS)} FROM {TABLE}"))
            reader.close()
            self.provisioned(own)
            dst = sqlite_db(os.path.join(self.folder, "own.db"), 0)
            c0 = cpu()
            out = push(own, dst)
            label = f"initial sync {s.name} -> SQLite, {n:,} rows made on the server (vs the same)"
            self.add(label, out, read, "s", "<= 3x")
            self.add("  the same, CPU seconds of this process", cpu() - c0, None, "s")

    def read_into(self, url: str, path: str) -> None:
        conn = sqlite3.connect(path)
        server = self.s.connect(url)
        if self.s.key == "pg":
            cur = server.cursor(name="read")
        else:
            import pymysql.cursors

            cur = server.cursor(pymysql.cursors.SSCursor)
        cur.execute(f"SELECT {', '.join(COLUMNS)} FROM {TABLE}")
        with conn:
            while rows := cur.fetchmany(5000):
                conn.executemany(f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?)", rows)
        cur.close()
        server.close()
        conn.close()

    def small_and_big(self, big: str, src: str, dst: str, figures: list[str]) -> None:
        s = self.s
        small_n = 10_000 if self.rows >= 100_000 else max(self.rows // 10, 50)
        ssrc = sqlite_db(os.path.join(self.folder, "ssrc.db"), small_n)
        sdst = sqlite_db(os.path.join(self.folder, "sdst.db"), 0)
        with s.database() as small:
            self.provisioned(small)
            push(ssrc, small)
            push(small, sdst)
            push(src, big)  # the first session back after the initial syncs (not measured)
            push(ssrc, small)
            pairs = {"big": (big, src, dst, self.rows), "small": (small, ssrc, sdst, small_n)}
            if "incremental" in figures:
                for way in ("out", "in"):
                    got = {k: self.incremental(*v, way=way) for k, v in pairs.items()}
                    label = f"{s.name} -> SQLite" if way == "out" else f"SQLite -> {s.name}"
                    self.add(
                        f"incremental {label}, 100 changed in {self.rows:,} vs {small_n:,} rows (ms)",
                        got["big"], got["small"], "ms", "<= 1.5x",
                    )  # fmt: skip
            if "no-change" in figures:
                for way in ("out", "in"):
                    ms = self.no_change(big, src if way == "in" else dst, way)
                    label = f"{s.name} -> SQLite" if way == "out" else f"SQLite -> {s.name}"
                    self.add(f"no-change session {label}, {self.rows:,} rows (ms)", ms, None, "ms", "< 50 ms")

    def incremental(self, url: str, src: str, dst: str, n: int, *, way: str, reps: int = 9) -> float:
        """Median ms of a session after 100 rows changed on its source."""
        rnd = random.Random(7)
        times = []
        with peersync.connect(url) as server, peersync.connect(dst if way == "out" else src) as lite:
            for i in range(reps):
                keys = rnd.sample(range(1, n + 1), min(100, n // 2))
                vals = changed_values(keys, seed=1000 + i)
                sql = "UPDATE item SET name = {0}, note = {0}, qty = {0}, price = {0} WHERE id = {0}"
                if way == "out":
                    conn = self.s.connect(url)
                    conn.cursor().executemany(sql.format(self.s.ph), vals)
                    conn.commit()
                    conn.close()
                    a, b = server, lite
                else:
                    conn = sqlite3.connect(src)
                    with conn:
                        conn.executemany(sql.format("?"), vals)
                    conn.close()
                    a, b = lite, server
                t = time.perf_counter()
                r = peersync.sync(a, b, SCOPE, direction="push")
                times.append(time.perf_counter() - t)
                assert r.sent_a_to_b == len(keys), (r.sent_a_to_b, len(keys))
        return statistics.median(times) * 1000

    def no_change(self, url: str, lite_path: str, way: str, reps: int = 15) -> float:
        times = []
        with peersync.connect(url) as server, peersync.connect(lite_path) as lite:
            a, b = (server, lite) if way == "out" else (lite, server)
            peersync.sync(a, b, SCOPE, direction="push")
            for _ in range(reps):
                t = time.perf_counter()
                r = peersync.sync(a, b, SCOPE, direction="push")
                times.append(time.perf_counter() - t)
                assert r.sent_a_to_b == 0
        return statistics.median(times) * 1000

    # -- trigger overhead --------------------------------------------------------
    def triggers(self) -> None:
        s = self.s
        bulk, single = min(100_000, self.rows), 2000
        got: dict[bool, dict[str, float]] = {}
        for tracked in (False, True, False, True):  # alternated, best of two each
            with s.database() as url:
                if tracked:
                    self.provisioned(url)
                t = time.perf_counter()
                s.bulk_load(url, generate(bulk))
                ins = time.perf_counter() - t
                conn = s.connect(url)
                t = time.perf_counter()
                conn.cursor().execute("UPDATE item SET qty = qty + 1, note = 'bulk update'")
                conn.commit()
                upd = time.perf_counter() - t
                conn.close()
                conn = s.connect(url, autocommit=True)
                cur = conn.cursor()
                rnd = random.Random(3)
                t = time.perf_counter()
                for i in range(single):
                    cur.execute(f"UPDATE item SET qty = {s.ph} WHERE id = {s.ph}", (i, rnd.randrange(1, bulk + 1)))
                one = time.perf_counter() - t
                conn.close()
            prev = got.get(tracked, {})
            now = {"ins": ins, "upd": upd, "one": one}
            got[tracked] = {k: min(v, prev.get(k, v)) for k, v in now.items()}
        how = "COPY" if s.key == "pg" else "multi-row INSERT"
        self.add(f"bulk {how} of {bulk:,} rows, tracked vs untracked", got[True]["ins"], got[False]["ins"], "s", "2.5x")
        self.add(
            f"bulk UPDATE of {bulk:,} rows, tracked vs untracked", got[True]["upd"], got[False]["upd"], "s", "2.5x"
        )
        self.add(
            f"{single:,} single-row autocommit UPDATEs, tracked vs untracked",
            got[True]["one"], got[False]["one"], "s", "1.2x",
        )  # fmt: skip

    # -- concurrent writers -----------------------------------------------------------
    def writers(self) -> None:
        keys = 100_000
        base = self._writers(False, keys, None)
        tracked = self._writers(True, keys, None)
        during = self._writers(True, keys, self._session_loop)
        label = f"{self.threads} writers, upserts/s"
        self.add(f"{label}: tracked (peersync) vs untracked (baseline)", tracked, base, "/s")
        self.add(f"{label}: tracked while sessions run vs untracked", during, base, "/s")

    def _session_loop(self, url: str) -> Callable[[threading.Event], None]:
        path = sqlite_db(os.path.join(self.folder, "loop.db"), 0)

        def loop(stop: threading.Event) -> None:
            n = 0
            with peersync.connect(url) as src, peersync.connect(path) as dst:
                while not stop.is_set():
                    peersync.sync(src, dst, SCOPE, direction="push")
                    n += 1
            log(f"  {n} sessions ran during the writers' run")

        return loop

    def _writers(
        self, tracked: bool, keys: int, side: Callable[[str], Callable[[threading.Event], None]] | None
    ) -> float:
        s = self.s
        with s.database() as url:
            s.bulk_load(url, ((i, "seed", "seed", 0, 0.0) for i in range(keys)))
            if tracked:
                self.provisioned(url)
            stop = threading.Event()
            counts = [0] * self.threads
            retry = s.deadlock()

            def work(n: int) -> None:
                rnd = random.Random(n)
                conn = s.connect(url, autocommit=True)
                cur = conn.cursor()
                while not stop.is_set():
                    try:
                        cur.execute(s.upsert, (rnd.randrange(keys), n))
                    except retry:
                        continue
                    counts[n] += 1
                conn.close()

            pool = [threading.Thread(target=work, args=(n,)) for n in range(self.threads)]
            if side is not None:
                pool.append(threading.Thread(target=side(url), args=(stop,)))
            for th in pool:
                th.start()
            time.sleep(self.seconds)
            stop.set()
            for th in pool:
                th.join()
        return sum(counts) / self.seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000, help="N, the big table's rows (default 1,000,000)")
    ap.add_argument("--server", default="pg,my", help="comma-separated: pg, my (default both)")
    ap.add_argument("--only", help=f"comma-separated figures: {','.join(FIGURES)}")
    ap.add_argument("--seconds", type=float, default=10.0, help="the concurrent writers' run, per measurement")
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--hold-read-view", action="store_true", help="an open snapshot on the server throughout")
    args = ap.parse_args(argv)
    figures = [f.strip() for f in (args.only or ",".join(FIGURES)).split(",") if f.strip()]
    if unknown := [f for f in figures if f not in FIGURES]:
        ap.error(f"unknown figure(s) {', '.join(unknown)}")
    servers = [SERVERS[k.strip()]() for k in args.server.split(",") if k.strip()]
    start = time.perf_counter()
    log(f"start, {load()}; {', '.join(s.server_version() for s in servers)}")
    results: list[Result] = []
    for s in servers:
        with tempfile.TemporaryDirectory(prefix="peersync-servers-") as folder:
            run = Run(s, args.rows, folder, args.seconds, args.threads)
            view = s.hold_read_view() if args.hold_read_view and s.key == "my" else None
            if {"initial", "incremental", "no-change"} & set(figures):
                log(f"{s.name}: sessions ({load()})")
                run.sessions(figures)
            if "triggers" in figures:
                log(f"{s.name}: triggers ({load()})")
                run.triggers()
            if "writers" in figures:
                log(f"{s.name}: writers ({load()})")
                run.writers()
            results += run.out
            if view is not None:
                view.close()
    log(f"end, {load()}, {time.perf_counter() - start:.0f} s")
    print(f"{'server':10} {'figure':72} {'peersync':>12} {'baseline':>12} {'ratio':>7}  target")
    for server, figure, mine, base, unit, target in results:
        ratio = f"{mine / base:6.2f}x" if mine is not None and base else "      -"
        print(f"{server:10} {figure:72} {show(mine, unit):>12} {show(base, unit):>12} {ratio}  {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
