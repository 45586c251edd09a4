"""``peersync clone http://server DST``: a new replica from a snapshot a real
``peersync serve`` streams (docs/protocol.md, "Snapshot"): exact knowledge
(the first sync sends nothing either way), the scope's tables alone, a read
token suffices, and a stream cut short or not whole leaves no database."""

from __future__ import annotations

import hashlib
import io
import random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest

import peersync
from peersync._transports.http import snapshot as snapshot_module
from peersync._transports.http.client import HTTPPeer
from peersync._transports.http.snapshot import read_snapshot

from ..helpers import write
from .conftest import Server, items, make, run
from .test_resilience import CuttingProxy
from .threaded import ThreadedServer

SCHEMA = (
    "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER);"
    "CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT);"
    "CREATE TABLE secret (id INTEGER PRIMARY KEY, password TEXT);"
)
ROWS = 3000


def _served(folder: Path, servers: Callable[..., Server]) -> tuple[Path, Server, str]:
    db = make(folder / "clone-served.db", SCHEMA)
    with peersync.connect(db) as d:
        d.provision("t", ["note"])
    write(
        db,
        *(f"INSERT INTO item VALUES ({i}, 'item {i} {'x' * 40}', {i})" for i in range(ROWS)),
        "INSERT INTO note VALUES (1, 'other scope')",
        "INSERT INTO secret VALUES (1, 'hunter2')",
        "UPDATE item SET qty = -1 WHERE id < 10",
        "DELETE FROM item WHERE id >= 2990",
    )
    read = run("token", "add", str(db), "--scope", "s", "--rights", "read").stdout.splitlines()[-1]
    return db, servers(db), read


@pytest.fixture(scope="module")
def served(folder: Path, servers: Callable[..., Server]) -> tuple[Path, Server, str]:
    return _served(folder, servers)


def _tables(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    out = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    conn.close()
    return {n for n in out if not n.startswith(("_peersync", "sqlite_"))}


def test_the_cli_clones_a_served_scope_and_the_first_sync_sends_nothing(
    folder: Path, served: tuple[Path, Server, str]
) -> None:
    db, server, read = served
    dst = folder / "laptop-clone.db"
    out = run("clone", server.url, str(dst), "--scope", "s", "--token", read)
    assert "cloned scope s" in out.stdout
    assert items(dst) == items(db)
    assert _tables(dst) == {"item"}  # neither another scope's table nor a private one travels
    assert list(folder.glob(".clone-served.db.*")) == []  # the server's snapshot file is gone
    with peersync.connect(dst) as c, peersync.connect(server.url, token=read) as remote:
        assert c.describe("s").replica_id != remote.describe("s").replica_id
        assert c.scopes() == ["s"]
        pull = peersync.sync(c, remote, "s", direction="pull")
    assert pull.sent_b_to_a == 0 and pull.batches == 0
    with peersync.connect(dst) as c, peersync.connect(db) as s:  # the push needs a write right: go local
        push = peersync.sync(c, s, "s", direction="push")
    assert push.sent_a_to_b == 0
    write(db, "INSERT INTO item VALUES (5000, 'later', 1)")
    with peersync.connect(dst) as c, peersync.connect(server.url, token=read) as remote:
        assert peersync.sync(c, remote, "s", direction="pull").sent_b_to_a == 1
    assert items(dst) == items(db)


def test_without_a_token_nothing_is_made(folder: Path, served: tuple[Path, Server, str]) -> None:
    _, server, _ = served
    dst = folder / "no-token.db"
    proc = run("clone", server.url, str(dst), "--scope", "s", check=False)
    assert proc.returncode != 0 and len(proc.stderr.strip().splitlines()) == 1
    assert not dst.exists() and list(folder.glob(".no-token.db.*")) == []


class _Budget(random.Random):
    def __init__(self, budget: int) -> None:
        super().__init__(0)
        self.budget = budget

    def randint(self, a: int, b: int) -> int:
        return self.budget


def test_a_cut_stream_leaves_no_database(folder: Path, served: tuple[Path, Server, str]) -> None:
    _, server, read = served
    proxy = CuttingProxy(server.port, 0, max_cuts=100)
    proxy.rng = _Budget(40_000)  # every connection cut 40 kB into the reply: mid snapshot
    dst = folder / "cut-clone.db"
    try:
        with pytest.raises(peersync.TransportError, match="cut"):
            peersync.clone(proxy.url, dst, "s", token=read)
    finally:
        proxy.close()
    assert proxy.cuts >= 1
    assert not dst.exists() and list(folder.glob(".cut-clone.db.*")) == []


def _frames(*frames: object) -> list[bytes]:
    return [msgpack.packb(f, use_bin_type=True) for f in frames]


def test_a_snapshot_that_is_not_whole_is_refused() -> None:
    body = b"SQLite format 3\x00" + b"\x01" * 100
    good = hashlib.sha256(body).digest()
    out = io.BytesIO()
    assert read_snapshot("u", _frames(["snapshot", 1, len(body)], body, ["end", good]), out) == len(body)
    assert out.getvalue() == body
    bad = [
        _frames(["snapshot", 1, len(body)], body, ["end", b"\x00" * 32]),  # digest
        _frames(["snapshot", 1, len(body) + 1], body, ["end", good]),  # size
        _frames(["snapshot", 1, 1], body),  # more than announced
        _frames(["snapshot", 2, len(body)], body, ["end", good]),  # a format this version does not know
        _frames(["snapshot", 1, len(body)], 7, ["end", good]),  # a frame of no kind
    ]
    for frames in bad:
        with pytest.raises(peersync.ProtocolError):
            read_snapshot("u", frames, io.BytesIO())
    with pytest.raises(peersync.TransportError, match="cut"):
        read_snapshot("u", _frames(["snapshot", 1, len(body)], body), io.BytesIO())


def _slow(monkeypatch: pytest.MonkeyPatch, seconds: float, fail: peersync.SyncError | None = None) -> None:
    """The server's snapshot file takes ``seconds`` to write (then fails with
    ``fail``, if given); the server waits 0.1 s before it answers and sends a
    wait frame every 0.2 s."""
    real = snapshot_module.scope_snapshot

    def slow(*args: Any, **kwargs: Any) -> None:
        time.sleep(seconds)
        if fail is not None:
            raise fail
        real(*args, **kwargs)

    monkeypatch.setattr(snapshot_module, "scope_snapshot", slow)
    monkeypatch.setattr(snapshot_module, "PATIENCE", 0.1)
    monkeypatch.setattr(snapshot_module, "KEEPALIVE", 0.2)


def test_a_snapshot_slower_than_the_client_timeout_still_arrives(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A large scope takes the server minutes to write; the client's timeout
    between bytes (1 s here) must not cut it: wait frames keep it alive."""
    db = make(folder / "slow-served.db", SCHEMA)
    write(db, *(f"INSERT INTO item VALUES ({i}, 'i', {i})" for i in range(50)))
    _slow(monkeypatch, 2.0)
    server = ThreadedServer(db)
    try:
        out = io.BytesIO()
        with HTTPPeer(server.url, timeout=1.0) as peer:
            size = peer.snapshot("s", out)
    finally:
        server.stop()
    assert size == len(out.getvalue()) > 0 and out.getvalue().startswith(b"SQLite format 3\x00")


def test_an_error_after_the_answer_began_reaches_the_client_as_its_class(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = make(folder / "failing-served.db", SCHEMA)
    _slow(monkeypatch, 1.5, peersync.StorageError("cannot make a snapshot: disk full"))
    server = ThreadedServer(db)
    try:
        with HTTPPeer(server.url, timeout=1.0) as peer, pytest.raises(peersync.StorageError, match="disk full"):
            peer.snapshot("s", io.BytesIO())
    finally:
        server.stop()


def test_wait_and_error_frames_before_the_header_only() -> None:
    body = b"SQLite format 3\x00"
    end = ["end", hashlib.sha256(body).digest()]
    assert read_snapshot("u", _frames(["wait"], ["wait"], ["snapshot", 1, len(body)], body, end), io.BytesIO()) == 16
    with pytest.raises(peersync.ProtocolError):  # a wait frame once the file has begun is no frame of this stream
        read_snapshot("u", _frames(["snapshot", 1, len(body)], ["wait"], body, end), io.BytesIO())
    with pytest.raises(peersync.ScopeError, match="gone"):
        read_snapshot("u", _frames(["wait"], ["error", 1, "scope", "gone"]), io.BytesIO())
