"""Sessions through a real server survive what networks and operators do:
connections cut at random bytes (replies lost after the server committed
included), a server killed with SIGKILL mid-session, a server stopped with
SIGTERM. Every time the next attempt converges, and no row is applied twice:
the destination's tick, which takes one step per row applied, ends at the
number of rows sent."""

from __future__ import annotations

import contextlib
import random
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import peersync

from ..helpers import write
from .conftest import Server, cli, env, items, make

ServerFactory = Callable[..., Server]


class CuttingProxy:
    """A TCP proxy to ``port`` that cuts connections after a random number of
    bytes from the server (so a reply, or a stream, stops midway, often
    after the server committed what the request asked), ``max_cuts`` times."""

    def __init__(self, port: int, seed: int, max_cuts: int = 12) -> None:
        self.upstream = port
        self.rng = random.Random(seed)
        self.max_cuts = max_cuts
        self.cuts = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream))
            except OSError:
                client.close()
                continue
            # Cut each new connection somewhere in its first replies, until
            # enough cuts were made for the session to be let through.
            budget = self.rng.randint(1, 1500) if self.cuts < self.max_cuts else None
            threading.Thread(target=self._pump, args=(client, server, None), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, budget), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, budget: int | None) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if budget is not None and len(data) >= budget:
                    dst.sendall(data[:budget])
                    self.cuts += 1
                    break
                if budget is not None:
                    budget -= len(data)
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self._stop = True
        self.listener.close()


@pytest.fixture
def seed() -> int:
    s = random.randrange(2**32)
    print(f"proxy seed {s}")
    return s


def _tick(path: Path) -> int:
    with peersync.connect(path) as db:
        return db.status("s")[0].tick


def _until_synced(a: str, b: str, direction: str, **kw: object) -> int:
    """Sync until a session completes; the number of attempts."""
    for attempt in range(1, 200):
        try:
            with peersync.connect(a) as x, peersync.connect(b, retries=1, backoff=0.01) as y:
                peersync.sync(x, y, "s", direction=direction, batch_size=10, **kw)  # type: ignore[arg-type]
            return attempt
        except peersync.TransportError:
            continue
    raise AssertionError("never synced")


def test_sessions_cut_at_random_bytes_resume_and_apply_nothing_twice(
    folder: Path, servers: ServerFactory, seed: int
) -> None:
    laptop, served = make(folder / "cut-laptop.db"), make(folder / "cut-served.db")
    server = servers(served)
    proxy = CuttingProxy(server.port, seed)
    try:
        write(laptop, *(f"INSERT INTO item VALUES ({i}, 'laptop {i}', {i})" for i in range(400)))
        _until_synced(str(laptop), proxy.url, "push")
        assert items(served) == items(laptop)
        assert _tick(served) == 400  # each row applied once, however many replies were lost

        write(served, *(f"INSERT INTO item VALUES ({1000 + i}, 'served {i}', {i})" for i in range(400)))
        before = _tick(laptop)
        _until_synced(str(laptop), proxy.url, "pull")
        assert items(served) == items(laptop)
        assert _tick(laptop) == before + 400
        assert proxy.cuts >= 2
    finally:
        proxy.close()


def _server_rows(path: Path) -> int:
    conn = sqlite3.connect(path, timeout=5)
    try:
        (n,) = conn.execute("SELECT count(*) FROM item").fetchone()
        return int(n)
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "term"])
def test_a_server_stopped_mid_session_loses_and_doubles_nothing(tmp_path: Path, sig: int) -> None:
    laptop, served = make(tmp_path / "laptop.db"), make(tmp_path / "served.db")
    n = 20000
    write(laptop, f"WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < {n})"
                  " INSERT INTO item SELECT i, printf('row %d', i), i FROM c")  # fmt: skip
    server = Server(served).start()
    try:
        push = subprocess.Popen(
            cli("sync", str(laptop), server.url, "--scope", "s", "--direction", "push", "--batch-size", "100"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(),
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while _server_rows(served) < 300 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert 0 < _server_rows(served) < n, "the session ended before the server was stopped"
        rc = server.signal(sig)
        assert rc == (-signal.SIGKILL if sig == signal.SIGKILL else 0)
        _, err = push.communicate(timeout=120)
        assert (push.returncode == 2 and "unreachable" in err) or "cut" in err, err
        kept = _server_rows(served)
        assert 0 < kept < n
        server.start()
        with peersync.connect(laptop) as a, peersync.connect(server.url) as b:
            r = peersync.sync(a, b, "s", direction="push", batch_size=1000)
        assert r.sent_a_to_b == n - kept  # committed batches are not sent again
        assert items(served) == items(laptop)
        assert _tick(served) == n
    finally:
        server.stop()
