"""Syncing through real ``peersync serve`` processes: push, pull, both,
server to server, loops through servers, status, and errors that cross the
wire as their own class."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

import peersync
from peersync import Outcome

from ..helpers import write
from .conftest import Server, items, make, run

ServerFactory = Callable[..., Server]


def _sync(a: str, b: str, *args: str) -> dict[str, object]:
    out: dict[str, object] = json.loads(run("sync", a, b, "--scope", "s", "--json", *args).stdout)
    return out


def test_a_client_pushes_and_pulls_through_a_served_database(folder: Path, servers: ServerFactory) -> None:
    laptop, served = make(folder / "laptop1.db"), make(folder / "served1.db")
    server = servers(served)
    write(laptop, *(f"INSERT INTO item VALUES ({i}, 'laptop {i}', {i})" for i in range(1, 51)))
    write(served, *(f"INSERT INTO item VALUES ({i}, 'server {i}', {i})" for i in range(101, 131)))

    r = _sync(str(laptop), server.url, "--direction", "push")
    assert (r["sent_a_to_b"], r["sent_b_to_a"]) == (50, 0)
    assert len(items(served)) == 80 and len(items(laptop)) == 50

    r = _sync(str(laptop), server.url, "--direction", "pull")
    assert (r["sent_a_to_b"], r["sent_b_to_a"]) == (0, 30)
    assert items(laptop) == items(served)

    write(laptop, "UPDATE item SET qty = qty + 1 WHERE id = 1")
    write(served, "DELETE FROM item WHERE id = 101")
    r = _sync(str(laptop), server.url)
    assert (r["sent_a_to_b"], r["sent_b_to_a"]) == (1, 1)
    assert items(laptop) == items(served)
    again = _sync(str(laptop), server.url)
    assert (again["sent_a_to_b"], again["sent_b_to_a"]) == (0, 0)


def test_a_pass_of_many_batches_streams_in_one_response(folder: Path, servers: ServerFactory) -> None:
    laptop, served = make(folder / "laptop2.db"), make(folder / "served2.db")
    server = servers(served)
    write(served, "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 3000)"
                  " INSERT INTO item SELECT i, printf('row %d', i), i FROM c")  # fmt: skip
    counted = Counting()
    with peersync.connect(laptop) as a, peersync.connect(server.url, transport=counted) as b:
        r = peersync.sync(a, b, "s", direction="pull", batch_size=100)
    assert r.sent_b_to_a == 3000 and r.batches == 30
    assert items(laptop) == items(served)
    # describe, then the whole pass in one streamed response (finish is local)
    assert counted.paths == ["/v1/scopes/s/describe", "/v1/scopes/s/batches"]


def test_compressed_bodies_both_ways(folder: Path, servers: ServerFactory) -> None:
    laptop, served = make(folder / "gzip-laptop.db"), make(folder / "gzip-served.db")
    server = servers(served)
    filler = "x" * 200
    write(laptop, *(f"INSERT INTO item VALUES ({i}, '{filler}', {i})" for i in range(500)))
    write(served, *(f"INSERT INTO item VALUES ({1000 + i}, '{filler}', {i})" for i in range(500)))
    counted = Counting()
    with peersync.connect(laptop) as a, peersync.connect(server.url, compress=True, transport=counted) as b:
        r = peersync.sync(a, b, "s")
    assert (r.sent_a_to_b, r.sent_b_to_a) == (500, 500) and items(laptop) == items(served)
    assert counted.sent_gzip and counted.got_gzip  # the apply went gzipped, the pass came back gzipped
    plain = Counting()
    with peersync.connect(laptop) as a, peersync.connect(server.url, transport=plain) as b:
        peersync.sync(a, b, "s")
    assert not plain.sent_gzip and not plain.got_gzip  # loopback: not worth it by default


class Counting(httpx.HTTPTransport):
    """An httpx transport that records what goes over the wire."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []
        self.sent_gzip = self.got_gzip = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        self.sent_gzip |= request.headers.get("content-encoding") == "gzip"
        response = super().handle_request(request)
        self.got_gzip |= response.headers.get("content-encoding") == "gzip"
        return response


def test_two_servers_sync_through_a_third_process(folder: Path, servers: ServerFactory) -> None:
    one, two = make(folder / "farm1.db"), make(folder / "farm2.db")
    s1, s2 = servers(one), servers(two)
    write(one, "INSERT INTO item VALUES (1, 'one', 1)")
    write(two, "INSERT INTO item VALUES (2, 'two', 2)")
    r = _sync(s1.url, s2.url, "--batch-size", "1")
    assert (r["sent_a_to_b"], r["sent_b_to_a"]) == (1, 1)
    assert items(one) == items(two) == [(1, "one", 1), (2, "two", 2)]


def test_a_loop_through_servers_sends_nothing_twice(folder: Path, servers: ServerFactory) -> None:
    # P1 -> S1 -> S2 -> P1: P1 receives none of its own changes back.
    p1, p2 = make(folder / "loop-p1.db"), make(folder / "loop-p2.db")
    s1, s2 = servers(make(folder / "loop-s1.db")), servers(make(folder / "loop-s2.db"))
    write(p1, *(f"INSERT INTO item VALUES ({i}, 'p1', {i})" for i in range(20)))
    assert _sync(str(p1), s1.url, "--direction", "push")["sent_a_to_b"] == 20
    assert _sync(s1.url, s2.url, "--direction", "push")["sent_a_to_b"] == 20
    back = _sync(s2.url, str(p1), "--direction", "push")
    assert back["sent_a_to_b"] == 0 and back["skipped_known"] == 0
    # A client that switches servers after convergence receives nothing.
    assert _sync(str(p2), s1.url)["sent_b_to_a"] == 20
    switched = _sync(str(p2), s2.url)
    assert (switched["sent_a_to_b"], switched["sent_b_to_a"]) == (0, 0)
    assert items(p1) == items(p2) == items(folder / "loop-s1.db") == items(folder / "loop-s2.db")


def test_status_and_conflicts_of_a_served_database(folder: Path, servers: ServerFactory) -> None:
    served = make(folder / "status.db")
    server = servers(served)
    (st,) = json.loads(run("status", server.url, "--json").stdout)
    with peersync.connect(served) as db:
        local = db.status("s")[0]
    assert st["replica_id"] == local.replica_id.hex() and st["tables"] == ["item"]
    assert json.loads(run("status", server.url, "--scope", "s", "--json").stdout)["scope"] == "s"
    assert json.loads(run("conflicts", server.url, "--json").stdout) == []


def test_server_errors_arrive_as_their_own_class(folder: Path, servers: ServerFactory) -> None:
    served = make(folder / "errors.db")
    server = servers(served)
    with peersync.connect(server.url) as remote:
        with pytest.raises(peersync.ScopeError, match="unknown scope 'nope'"):
            remote.describe("nope")
        with pytest.raises(peersync.ConfigurationError, match="runs on the server's host"):
            remote.provision("t", ["item"])
    other = make(folder / "other-shape.db", "CREATE TABLE item (id INTEGER PRIMARY KEY, label TEXT);")
    with peersync.connect(other) as a, peersync.connect(server.url) as b, pytest.raises(peersync.SchemaMismatch):
        peersync.sync(a, b, "s")
    proc = run("sync", str(other), server.url, "--scope", "s", check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("peersync: error: scope 's' differs")


def test_a_callback_policy_for_a_remote_destination_is_refused(folder: Path, servers: ServerFactory) -> None:
    laptop, served = make(folder / "cb-laptop.db"), make(folder / "cb-served.db")
    server = servers(served)
    write(laptop, "INSERT INTO item VALUES (1, 'x', 1)")
    refused = pytest.raises(peersync.ConfigurationError, match="conflict callback runs only where")
    with peersync.connect(laptop) as a, peersync.connect(server.url) as b, refused:
        peersync.sync(a, b, "s", direction="push", policy=lambda c: Outcome.SOURCE)
    assert items(served) == []


def test_an_unreachable_server_is_a_transport_error(folder: Path) -> None:
    from .conftest import free_port

    url = f"http://127.0.0.1:{free_port()}"
    with (
        peersync.connect(url, retries=2, backoff=0.01) as remote,
        pytest.raises(peersync.TransportError, match="3 tries"),
    ):
        remote.describe("s")
    proc = run("status", url, check=False)
    assert proc.returncode == 2 and "unreachable" in proc.stderr
