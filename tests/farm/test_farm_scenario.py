"""The scale-out scenario end to end: three ``peersync serve`` processes in
a ring kept in sync by ``peersync farm``, five clients that write and sync
with a server picked at random every round. Every client receives each row
created by another exactly once, whichever servers it went through; after
the writes stop the servers converge, a quiet farm round sends nothing,
everyone holds identical rows, and a client that switches servers then
receives nothing.

The world is built once per module (``world``); each test checks one promise
on it. A failing run prints its seed; ``PEERSYNC_FARM_SEED=N`` replays it.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import peersync

from ..http.conftest import Server
from .conftest import SCOPE, FarmProcess, make_db, notes, write_config

CLIENTS = 5
INSERT_ROUNDS = 3
MIXED_ROUNDS = 3
ROWS_PER_ROUND = 3


@dataclass
class Client:
    name: str
    path: Path
    created: int = 0
    received: int = 0  # rows sent to this client over all its pulls
    skipped_known: int = 0  # rows sent to it that it already knew
    servers: set[str] = field(default_factory=set)


@dataclass
class World:
    seed: int
    servers: dict[str, Server]
    clients: list[Client]
    farm: FarmProcess
    inserted: int  # rows created in the insert-only phase, all clients together
    quiet_mark: int  # farm events before the quiet round
    insert_phase: list[tuple[int, int, int]]  # per client: received, skipped as known, created


# One client connection per server, kept open as a real client would (a
# connection costs an SSL context even over http://).
_remotes: dict[str, peersync.Database] = {}


def sync_with(client: Client, server: Server) -> peersync.SyncResult:
    remote = _remotes.get(server.url) or _remotes.setdefault(server.url, peersync.connect(server.url))
    with peersync.connect(client.path) as local:
        return peersync.sync(local, remote, SCOPE)


def wait_until_servers_agree(servers: dict[str, Server], expected: int | None, timeout: float = 45) -> None:
    deadline = time.monotonic() + timeout
    while True:
        held = [notes(s.db) for s in servers.values()]
        if all(h == held[0] for h in held) and (expected is None or len(held[0]) == expected):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the servers did not converge in {timeout} s: {[len(h) for h in held]} rows")
        time.sleep(0.1)


def round_quiet(events: list[dict[str, Any]], mark: int, links: set[str]) -> bool:
    """Every link has run a session, after ``mark``, that sent nothing."""
    quiet = {e["link"] for e in events[mark:] if e["ok"] and e["sent_a_to_b"] == e["sent_b_to_a"] == 0}
    return quiet >= links


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    seed = int(os.environ.get("PEERSYNC_FARM_SEED", random.randrange(2**32)))
    print(f"farm scenario seed: {seed} (PEERSYNC_FARM_SEED={seed} replays it)")
    rnd = random.Random(seed)
    folder = tmp_path_factory.mktemp("farm")
    servers = {n: Server(make_db(folder / f"server-{n}.db")).start() for n in ("a", "b", "c")}
    clients = [Client(f"c{i}", make_db(folder / f"client-{i}.db")) for i in range(CLIENTS)]
    config = write_config(
        folder / "farm.toml",
        {n: s.url for n, s in servers.items()},
        scope=SCOPE,
        topology="ring",
        interval=0.2,
        backoff=0.2,
        max_backoff=1.0,
    )
    farm = FarmProcess(config)
    try:

        def round_of(write: Callable[[Client, sqlite3.Connection], None]) -> None:
            for c in clients:
                conn = sqlite3.connect(c.path)
                with conn:
                    write(c, conn)
                conn.close()
                name = rnd.choice(sorted(servers))
                r = sync_with(c, servers[name])
                c.servers.add(name)
                pull = r.sessions[1]
                c.received += pull.sent
                c.skipped_known += pull.skipped_known

        def insert(c: Client, conn: sqlite3.Connection) -> None:
            for _ in range(ROWS_PER_ROUND):
                conn.execute("INSERT INTO note VALUES (?, ?, ?)", (f"{c.name}-{c.created}", f"by {c.name}", 0))
                c.created += 1

        for _ in range(INSERT_ROUNDS):
            round_of(insert)
        inserted = sum(c.created for c in clients)
        # Quiet: the farm brings every server every row; one more sync each
        # brings every client the rest, exactly once.
        wait_until_servers_agree(servers, inserted)
        for c in clients:
            name = rnd.choice(sorted(servers))
            r = sync_with(c, servers[name])
            c.received += r.sessions[1].sent
            c.skipped_known += r.sessions[1].skipped_known
        insert_phase = [(c.received, c.skipped_known, c.created) for c in clients]

        def mixed(c: Client, conn: sqlite3.Connection) -> None:
            ids = [i for (i,) in conn.execute("SELECT id FROM note ORDER BY id")]
            for _ in range(ROWS_PER_ROUND):
                op = rnd.choice(("insert", "update", "update", "delete"))
                if op == "insert" or not ids:
                    conn.execute("INSERT INTO note VALUES (?, ?, ?)", (f"{c.name}-{c.created}", f"by {c.name}", 0))
                    c.created += 1
                elif op == "update":
                    conn.execute(
                        "UPDATE note SET body = ?, n = n + 1 WHERE id = ?", (f"{c.name} was here", rnd.choice(ids))
                    )
                else:
                    conn.execute("DELETE FROM note WHERE id = ?", (ids.pop(rnd.randrange(len(ids))),))

        for _ in range(MIXED_ROUNDS):
            round_of(mixed)
        wait_until_servers_agree(servers, None)
        mark = len(farm.events)
        links = {"a<->b", "b<->c", "c<->a"}
        farm.wait_for(lambda ev: round_quiet(ev, mark, links), timeout=30)
        for c in clients:
            sync_with(c, servers[rnd.choice(sorted(servers))])
        yield World(seed, servers, clients, farm, inserted, mark, insert_phase)
    finally:
        if farm.proc.poll() is None:
            farm.stop(signal.SIGTERM)
        for s in servers.values():
            s.stop()
        while _remotes:
            _remotes.popitem()[1].close()


def test_in_the_insert_phase_every_client_received_each_row_of_the_others_exactly_once(world: World) -> None:
    for c, (received, skipped, created) in zip(world.clients, world.insert_phase, strict=True):
        assert skipped == 0, f"{c.name} was sent {skipped} rows it already had (seed {world.seed})"
        assert received == world.inserted - created, (
            f"{c.name} received {received} rows, others created {world.inserted - created} (seed {world.seed})"
        )


def test_clients_went_through_several_servers(world: World) -> None:
    # The scenario is about switching servers: with five clients and a dozen
    # rounds, a client that always met one server would mean no random pick.
    assert len(set().union(*(c.servers for c in world.clients))) == 3


def test_after_a_quiet_round_every_server_and_client_holds_identical_rows(world: World) -> None:
    reference = notes(world.servers["a"].db)
    assert reference, "the world wrote nothing"
    for s in world.servers.values():
        assert notes(s.db) == reference, f"server {s.url} differs (seed {world.seed})"
    for c in world.clients:
        assert notes(c.path) == reference, f"{c.name} differs (seed {world.seed})"


def test_the_farm_logged_every_link_and_its_quiet_round_sent_nothing(world: World) -> None:
    events = world.farm.events
    assert {e["link"] for e in events} == {"a<->b", "b<->c", "c<->a"}
    assert all(e["ok"] for e in events), [e for e in events if not e["ok"]][:3]
    assert sum(e["sent_a_to_b"] + e["sent_b_to_a"] for e in events[: world.quiet_mark]) > 0
    assert all({"time", "round", "conflicts", "seconds", "completed"} <= set(e) for e in events)


def test_a_client_that_switches_servers_after_convergence_receives_nothing(world: World) -> None:
    for c in world.clients[:2]:
        for server in world.servers.values():
            r = sync_with(c, server)
            assert (r.sent_a_to_b, r.sent_b_to_a, r.skipped_known) == (0, 0, 0), (c.name, server.url, r)


def test_the_farm_stops_cleanly_on_sigterm(world: World) -> None:
    rc, err = world.farm.stop(signal.SIGTERM)
    assert rc == 0, err
    assert "stopping after the sessions in hand" in err
    assert "Traceback" not in err
