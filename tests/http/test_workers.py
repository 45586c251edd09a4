"""``peersync serve --workers 2``: several uvicorn worker processes serve one
database; clients converge through them, and SIGTERM stops them all."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import peersync

from ..helpers import write
from .conftest import Server, items, make


def test_two_workers_serve_clients_that_converge(folder: Path, servers: Callable[..., Server]) -> None:
    served = make(folder / "workers.db")
    server = servers(served, "--workers", "2")
    clients = [make(folder / f"workers-client-{i}.db") for i in range(4)]
    for i, c in enumerate(clients):
        write(c, *(f"INSERT INTO item VALUES ({i * 1000 + k}, 'client {i}', {k})" for k in range(50)))
    for _ in range(2):  # a second round brings each client the others' rows
        for c in clients:
            with peersync.connect(c) as local, peersync.connect(server.url) as remote:
                peersync.sync(local, remote, "s")
    assert len(items(served)) == 200
    assert all(items(c) == items(served) for c in clients)
    with peersync.connect(clients[0]) as local, peersync.connect(server.url) as remote:
        quiet = peersync.sync(local, remote, "s")
    assert quiet.sent_a_to_b == quiet.sent_b_to_a == 0
    assert server.signal(signal.SIGTERM) == 0
