"""Speed over the wire (issue 9, item 6), each figure against a baseline in the same run.

    python bench/http_figures.py            # 1,000,000 rows, 50 clients for 20 s per worker count
    python bench/http_figures.py --quick    # 50,000 rows, 50 clients for 8 s

Figures (one table on stdout, progress on stderr):

- initial sync of ``--rows`` rows client -> server: through a real
  ``peersync serve`` on loopback, against the same sync in one process
  (SQLite file to SQLite file); target <= 1.5x;
- incremental session (10 rows changed, push), no-change session (push) and
  no-change sync (both directions: two sessions) through the server: median
  and p95 of ``--repeat`` runs, against the same in one process; target
  < 50 ms a session (the median is judged);
- the initial sync's CPU seconds, client and server processes together,
  against the one process's (steadier than wall time on a loaded machine);
- one server, 50 concurrent clients (5 processes of 10 threads), each
  writing one row and syncing both ways in a loop: syncs per second and p50 /
  p99 latency of a sync, with 1 uvicorn worker and with 2 when ``serve``
  has ``--workers``.

Every server is a subprocess of this checkout's code, reached over HTTP like a
user's; every database is a new file in a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))

import httpx  # noqa: E402

import peersync  # noqa: E402

SCHEMA = "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, price REAL)"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def make(path: Path, rows: int = 0, first: int = 0) -> Path:
    conn = sqlite3.connect(path)
    conn.execute(SCHEMA)
    conn.executemany(
        "INSERT INTO item VALUES (?, ?, ?, ?)",
        ((i, f"item {i} {'x' * 20}", i % 1000, i * 0.25) for i in range(first, first + rows)),
    )
    conn.commit()
    conn.close()
    with peersync.connect(path) as db:
        db.provision("s", ["item"])
    return path


def write(path: Path, sql: str, args: tuple[object, ...] = ()) -> None:
    conn = sqlite3.connect(path, timeout=30)
    conn.execute(sql, args)
    conn.commit()
    conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def has_workers() -> bool:
    env = dict(os.environ, PYTHONPATH=str(SRC))
    out = subprocess.run([sys.executable, "-m", "peersync", "serve", "--help"], capture_output=True, text=True, env=env)
    return "--workers" in out.stdout


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` and its finished children, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


SERVERS: dict[str, int] = {}  # url -> pid of its serve process


@contextmanager
def serve(db: Path, workers: int = 1) -> Iterator[str]:
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(SRC))
    args = [sys.executable, "-m", "peersync", "serve", str(db), "--port", str(port)]
    if workers > 1:
        args += ["--workers", str(workers)]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"serve did not start: {proc.communicate()[1]}")
            time.sleep(0.05)
        SERVERS[url] = proc.pid
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


Row = tuple[str, str, str, str, str]


def initial(folder: Path, rows: int) -> list[Row]:
    log(f"initial sync of {rows:,} rows: preparing")
    local_src, local_dst = make(folder / "init-a.db", rows), make(folder / "init-b.db")
    with peersync.connect(local_src) as a, peersync.connect(local_dst) as b:
        cpu = time.process_time()
        base = timed(lambda: peersync.sync(a, b, "s", direction="push"))
        base_cpu = time.process_time() - cpu
    log(f"  in one process: {base:.2f} s, {base_cpu:.2f} s of CPU")
    remote_src, served = make(folder / "init-c.db", rows), make(folder / "init-d.db")
    with serve(served) as url, peersync.connect(remote_src) as c, peersync.connect(url) as d:
        cpu, server_cpu = time.process_time(), cpu_of(SERVERS[url])
        wire = timed(lambda: peersync.sync(c, d, "s", direction="push"))
        wire_cpu = time.process_time() - cpu + cpu_of(SERVERS[url]) - server_cpu
    log(f"  over loopback: {wire:.2f} s, {wire_cpu:.2f} s of CPU (client and server)")
    ratio = wire / base
    return [
        (
            f"initial sync, {rows:,} rows client -> server",
            f"{wire:.2f} s",
            f"{base:.2f} s (in one process)",
            f"{ratio:.2f}x",
            "meets" if ratio <= 1.5 else "misses (target <= 1.5x)",
        ),
        (
            "  the same, CPU seconds (client + server)",
            f"{wire_cpu:.2f} s",
            f"{base_cpu:.2f} s",
            f"{wire_cpu / base_cpu:.2f}x",
            "report",
        ),
    ]


class Counting(httpx.HTTPTransport):
    """Counts the requests a client sends (round trips: one each)."""

    def __init__(self) -> None:
        super().__init__()
        self.requests = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        return super().handle_request(request)


def small_sessions(folder: Path, repeat: int) -> list[Row]:
    log("incremental and no-change sessions")
    out: list[Row] = []
    results: dict[str, dict[str, list[float]]] = {"incremental": {}, "no-change": {}, "no-change-push": {}}
    trips: dict[str, list[int]] = {"incremental": [], "no-change": [], "no-change-push": []}
    local_a, local_b = make(folder / "small-a.db", 10_000), make(folder / "small-b.db")
    remote_a, served = make(folder / "small-c.db", 10_000), make(folder / "small-d.db")
    counter = Counting()
    with serve(served) as url:
        for label, a_path, b_url in (("in one process", local_a, str(local_b)), ("over loopback", remote_a, url)):
            options = {"transport": counter} if b_url == url else {}
            with peersync.connect(a_path) as a, peersync.connect(b_url, **options) as b:
                peersync.sync(a, b, "s")
                peersync.sync(a, b, "s")

                def measured(name: str, direction: str, counted: bool = b_url == url) -> float:
                    before = counter.requests
                    seconds = timed(lambda: peersync.sync(a, b, "s", direction=direction))
                    if counted:
                        trips[name].append(counter.requests - before)
                    return seconds

                inc, none, push = [], [], []
                for _ in range(repeat):
                    ids = random.sample(range(10_000), 10)
                    conn = sqlite3.connect(a_path)
                    conn.executemany("UPDATE item SET qty = qty + 1 WHERE id = ?", [(i,) for i in ids])
                    conn.commit()
                    conn.close()
                    inc.append(measured("incremental", "push"))
                    peersync.sync(a, b, "s")  # settle (the pull teaches nothing new)
                    none.append(measured("no-change", "both"))
                    push.append(measured("no-change-push", "push"))
                results["incremental"][label] = inc
                results["no-change"][label] = none
                results["no-change-push"][label] = push
    for name, what, sessions in (
        ("incremental", "incremental session, 10 rows changed (push)", 1),
        ("no-change-push", "no-change session (push)", 1),
        ("no-change", "no-change sync, both ways (2 sessions)", 2),
    ):
        wire, base = results[name]["over loopback"], results[name]["in one process"]
        med, p95, bmed = statistics.median(wire) * 1000, pct(wire, 95) * 1000, statistics.median(base) * 1000
        out.append(
            (
                what,
                f"{med:.1f} ms (p95 {p95:.1f}), {_requests(trips[name])}",
                f"{bmed:.1f} ms (in one process)",
                f"{med / bmed:.1f}x",
                "meets" if med < 50 * sessions else f"misses (target < {50 * sessions} ms)",
            )
        )
    return out


def _requests(counts: list[int]) -> str:
    n = statistics.median(counts)
    return f"{n:g} request{'' if n == 1 else 's'}"


def _client_worker(url: str, paths: list[str], seconds: float, first_id: int) -> tuple[list[float], int]:
    """One process of the load: a thread per client file, each writing one
    row and syncing both ways until the deadline; the latency of each sync
    that completed, and how many failed (after the client's retries)."""
    latencies: list[float] = []
    failed = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(i: int, path: str) -> None:
        mine: list[float] = []
        with peersync.connect(path, timeout=30) as local, peersync.connect(url) as remote:
            n = 0
            while time.monotonic() < deadline:
                write(Path(path), "INSERT INTO item VALUES (?, 'load', 1, 0.5)", (first_id + i * 1_000_000 + n,))
                n += 1
                start = time.perf_counter()
                try:
                    peersync.sync(local, remote, "s")
                except peersync.SyncError:
                    with lock:
                        failed[0] += 1
                    continue
                mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(i, p)) for i, p in enumerate(paths)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, failed[0]


def concurrent(folder: Path, clients: int, seconds: float, workers: list[int]) -> list[Row]:
    out: list[Row] = []
    for w in workers:
        log(f"{clients} concurrent clients, {w} worker(s), {seconds:.0f} s")
        run = folder / f"load-{w}"
        run.mkdir()
        served = make(run / "served.db", 1000)
        paths = [str(make(run / f"client-{i}.db")) for i in range(clients)]
        with serve(served, w) as url:
            for p in paths:  # each client starts from the server's rows
                with peersync.connect(p) as local, peersync.connect(url) as remote:
                    peersync.sync(local, remote, "s")
            procs = 5
            per = [paths[i::procs] for i in range(procs)]
            start = time.perf_counter()
            with ProcessPoolExecutor(procs) as pool:
                futures = [
                    pool.submit(_client_worker, url, part, seconds, 10_000 + k * 100_000_000)
                    for k, part in enumerate(per)
                ]
                results = [f.result() for f in futures]
            latencies = [x for lat, _ in results for x in lat]
            failures = sum(n for _, n in results)
            elapsed = time.perf_counter() - start
        rate = len(latencies) / elapsed
        p50, p99 = pct(latencies, 50) * 1000, pct(latencies, 99) * 1000
        log(
            f"  {len(latencies)} syncs in {elapsed:.1f} s ({failures} failed): {rate:.1f}/s,"
            f" p50 {p50:.0f} ms, p99 {p99:.0f} ms"
        )
        out.append(
            (
                f"{clients} clients, 1 row + sync both ways, {w} uvicorn worker{'s' if w > 1 else ''}",
                f"{rate:.1f} syncs/s ({2 * rate:.1f} sessions/s)",
                f"p50 {p50:.0f} ms, p99 {p99:.0f} ms, {failures} failed",
                "-",
                "report",
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (50,000 rows, 8 s of load)")
    parser.add_argument("--rows", type=int, default=None, help="rows of the initial sync")
    parser.add_argument("--repeat", type=int, default=30, help="runs of each small session")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=None, help="seconds of load per worker count")
    parser.add_argument("--only", default="initial,small,concurrent", help="a subset: initial, small, concurrent")
    args = parser.parse_args()
    rows = args.rows or (50_000 if args.quick else 1_000_000)
    seconds = args.seconds or (8.0 if args.quick else 20.0)
    only = set(args.only.split(","))
    workers = [1, 2] if has_workers() else [1]
    load = os.getloadavg()
    table: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="peersync-http-bench-") as tmp:
        folder = Path(tmp)
        if "initial" in only:
            table += initial(folder, rows)
        if "small" in only:
            table += small_sessions(folder, args.repeat)
        if "concurrent" in only:
            table += concurrent(folder, args.clients, seconds, workers)
    after = os.getloadavg()
    print(
        f"peersync over HTTP on loopback; {os.cpu_count()} CPUs;"
        f" load average {load[0]:.1f} before, {after[0]:.1f} after"
    )
    print("| figure | over HTTP | baseline (same run) | ratio | verdict |")
    print("|---|---|---|---|---|")
    for row in table:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
