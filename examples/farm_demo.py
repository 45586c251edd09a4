"""The scale-out farm in one command: ``python examples/farm_demo.py``.

Three ``peersync serve`` servers on loopback (free ports), each over its own
database: SQLite files by default, or the PostgreSQL databases named with
``--server-db URL`` three times (existing databases; the demo creates its
table ``note`` in them). ``peersync farm`` keeps the three in sync in a ring,
and five clients (SQLite files) write and sync with a server picked at random
every round: first inserts only, then inserts, updates and deletes.

It ends by reading every database itself (sqlite3, psycopg) and printing that
all replicas hold identical rows, and, per client, how many rows it received
in the insert rounds against how many the other clients created: equal when
nothing arrives twice, whichever servers a client went through. Exit status 0
when both hold, 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import peersync

SCOPE = "notes"
SCHEMA = {
    "sqlite": "CREATE TABLE note (id TEXT PRIMARY KEY, body TEXT, n INTEGER)",
    "postgres": "CREATE TABLE IF NOT EXISTS note (id text PRIMARY KEY, body text, n bigint)",
}
NAMES = ("a", "b", "c")


def peersync_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "peersync", *args]


def child_env() -> dict[str, str]:
    """The children run this same peersync, installed or not."""
    src = str(Path(peersync.__file__).resolve().parent.parent)
    out = dict(os.environ)
    out["PYTHONPATH"] = os.pathsep.join(p for p in (src, out.get("PYTHONPATH")) if p)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# -- the databases, read and written as any program would -------------------------------


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def make_database(url: str) -> None:
    """Create the table (a new SQLite file, or in the PostgreSQL database) and provision the scope."""
    if is_postgres(url):
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(SCHEMA["postgres"])
    else:
        conn = sqlite3.connect(url)
        conn.execute(SCHEMA["sqlite"])
        conn.close()
    with peersync.connect(url) as db:
        db.provision(SCOPE, ["note"])


def rows_of(url: str) -> list[tuple[Any, ...]]:
    """Every row of ``note``, read from the database itself."""
    query = "SELECT id, body, n FROM note ORDER BY id"
    if is_postgres(url):
        import psycopg

        with psycopg.connect(url) as conn:
            return [tuple(r) for r in conn.execute(query.replace("ORDER BY id", 'ORDER BY id COLLATE "C"'))]
    conn = sqlite3.connect(url, timeout=30)
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


def digest(rows: list[tuple[Any, ...]]) -> str:
    return hashlib.sha256(repr(rows).encode()).hexdigest()[:12]


# -- the servers and the farm -------------------------------------------------------------


class Serve:
    def __init__(self, name: str, db: str) -> None:
        self.name, self.db, self.port = name, db, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._client: peersync.Database | None = None
        self.proc = subprocess.Popen(
            peersync_cmd("serve", db, "--scope", SCOPE, "--port", str(self.port)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
        )

    def wait_up(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"farm_demo: server {self.name} exited: {self.proc.communicate()[1].strip()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise SystemExit(f"farm_demo: server {self.name} did not come up in {timeout:g} s")

    def client(self) -> peersync.Database:
        """The clients' connection to this server, opened once and kept (as
        an application would: opening one costs more than a small sync)."""
        if self._client is None:
            self._client = peersync.connect(self.url)
        return self._client

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class FarmRunner:
    """``peersync farm FILE --json``, its session lines counted as they come."""

    def __init__(self, config: Path) -> None:
        self.proc = subprocess.Popen(
            peersync_cmd("farm", str(config), "--json"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        self.sessions = self.failed = self.rows = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            event = json.loads(line)
            self.sessions += 1
            self.failed += not event["ok"]
            self.rows += event["sent_a_to_b"] + event["sent_b_to_a"]

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=60)
        self._reader.join(10)
        return rc


# -- the clients ------------------------------------------------------------------------------


@dataclass
class Client:
    name: str
    path: Path
    created: int = 0
    received_inserts: int = 0  # rows sent to it during the insert rounds and the quiet sync after
    received_changes: int = 0  # rows sent to it during the mixed rounds and the final sync
    skipped_known: int = 0  # rows sent to it that it already held: 0 when nothing arrives twice


def sync_with(client: Client, server: Serve) -> peersync.SyncResult:
    with peersync.connect(client.path) as local:
        return peersync.sync(local, server.client(), SCOPE)


def write(client: Client, rnd: random.Random, n: int, mixed: bool) -> None:
    conn = sqlite3.connect(client.path, timeout=30)
    with conn:
        ids = [i for (i,) in conn.execute("SELECT id FROM note")]
        for _ in range(n):
            op = rnd.choice(("insert", "update", "update", "delete")) if mixed and ids else "insert"
            if op == "insert":
                conn.execute("INSERT INTO note VALUES (?, ?, 0)", (f"{client.name}-{client.created}", client.name))
                client.created += 1
            elif op == "update":
                conn.execute("UPDATE note SET body = ?, n = n + 1 WHERE id = ?", (client.name, rnd.choice(ids)))
            else:
                conn.execute("DELETE FROM note WHERE id = ?", (ids.pop(rnd.randrange(len(ids))),))
    conn.close()


def wait_servers_agree(servers: list[Serve], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        held = {digest(rows_of(s.db)) for s in servers}
        if len(held) == 1:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"farm_demo: the servers did not converge in {timeout:g} s")
        time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--server-db", action="append", default=[], metavar="URL", help="a server's database (give 3)")
    p.add_argument("--clients", type=int, default=5)
    p.add_argument("--insert-rounds", type=int, default=10)
    p.add_argument("--mixed-rounds", type=int, default=10)
    p.add_argument("--writes", type=int, default=5, help="rows each client writes per round")
    p.add_argument("--interval", type=float, default=0.5, help="the farm's interval, seconds")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--keep", metavar="DIR", help="keep the files in DIR (default: a temporary folder)")
    args = p.parse_args(argv)
    if args.server_db and len(args.server_db) != 3:
        p.error("give --server-db three times (one database per server), or not at all")
    if min(args.clients, args.insert_rounds, args.writes) < 1 or args.mixed_rounds < 0:
        p.error("--clients, --insert-rounds and --writes must be at least 1")
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    rnd = random.Random(seed)
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="peersync-farm-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"peersync farm demo (seed {seed}) in {folder}")

    dbs = args.server_db or [str(folder / f"server-{n}.db") for n in NAMES]
    for db in dbs:
        if not is_postgres(db) and Path(db).exists():
            raise SystemExit(f"farm_demo: {db} exists already: use a new --keep folder")
        make_database(db)
    clients = [Client(f"client{i + 1}", folder / f"client{i + 1}.db") for i in range(args.clients)]
    for c in clients:
        make_database(str(c.path))

    servers = [Serve(n, db) for n, db in zip(NAMES, dbs, strict=True)]
    farm: FarmRunner | None = None
    try:
        for s in servers:
            s.wait_up()
        config = folder / "farm.toml"
        config.write_text(
            f'scope = "{SCOPE}"\ntopology = "ring"\ninterval = {args.interval}\nbackoff = 0.2\nmax_backoff = 2\n'
            + "".join(f'[servers.{s.name}]\nurl = "{s.url}"\n' for s in servers)
        )
        farm = FarmRunner(config)
        for s in servers:
            print(f"  server {s.name}: {s.url} over {s.db}")
        print(f"  farm: a ring a <-> b <-> c <-> a, every {args.interval:g} s; {len(clients)} clients")

        def rounds(count: int, mixed: bool) -> None:
            for _ in range(count):
                for c in clients:
                    write(c, rnd, args.writes, mixed)
                    r = sync_with(c, rnd.choice(servers))
                    pull = r.sessions[1]
                    if mixed:
                        c.received_changes += pull.sent
                    else:
                        c.received_inserts += pull.sent
                    c.skipped_known += pull.skipped_known

        def quiet(mixed: bool) -> None:
            """No writes: the farm brings the servers together, then each
            client syncs once more with a server picked at random."""
            wait_servers_agree(servers, timeout=120)
            for c in clients:
                pull = sync_with(c, rnd.choice(servers)).sessions[1]
                if mixed:
                    c.received_changes += pull.sent
                else:
                    c.received_inserts += pull.sent
                c.skipped_known += pull.skipped_known

        start = time.monotonic()
        rounds(args.insert_rounds, mixed=False)
        quiet(mixed=False)
        inserted = {c.name: c.created for c in clients}
        total_inserted = sum(inserted.values())
        rounds(args.mixed_rounds, mixed=True)
        quiet(mixed=True)
        seconds = time.monotonic() - start
    finally:
        farm_rc = farm.stop() if farm is not None else None
        for s in servers:
            s.stop()

    replicas = [(f"server {s.name}", s.db) for s in servers] + [(c.name, str(c.path)) for c in clients]
    held = {name: rows_of(db) for name, db in replicas}
    reference = held["server a"]
    print(f"\nafter {seconds:.1f} s: {farm.sessions} farm sessions ({farm.failed} failed) moved {farm.rows} rows")
    print(f"{'replica':<10} {'rows':>6}  digest")
    for name, rows in held.items():
        print(f"{name:<10} {len(rows):>6}  {digest(rows)}{'' if rows == reference else '  DIFFERS'}")
    identical = all(rows == reference for rows in held.values())
    print(f"all {len(replicas)} replicas hold identical rows: {'yes' if identical else 'NO'}")

    print("\nin the insert rounds (sent again: rows a client already held, over all rounds)")
    print(f"{'client':<10} {'created':>8} {'by others':>10} {'received':>9} {'sent again':>11}")
    exact = True
    for c in clients:
        others = total_inserted - inserted[c.name]
        ok = c.received_inserts == others
        exact &= ok and c.skipped_known == 0
        mark = "" if ok else "  MISMATCH"
        print(f"{c.name:<10} {inserted[c.name]:>8} {others:>10} {c.received_inserts:>9} {c.skipped_known:>11}{mark}")
    print(
        f"every client received each row the others created exactly once: {'yes' if exact else 'NO'}"
        f"\n(mixed rounds: the clients then received {sum(c.received_changes for c in clients)} changed rows;"
        " a row changed twice between two syncs travels once)"
    )
    if farm_rc != 0:
        print(f"the farm exited with status {farm_rc}")
    return 0 if identical and exact and farm_rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
