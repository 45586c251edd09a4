"""The conformance suite's one fixture: ``net``, a factory of provisioned peers
whose kinds come from the test's combination (``kinds.COMBOS``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import peersync
from peersync import Knowledge

from .kinds import COMBOS, KINDS, SCOPE, Kind
from .pool import close_pools

T0 = 2_000_000_000_000  # writers' clocks (ms, in 2033): later than any real-time write of the run
# (MariaDB's SET timestamp stops at 2038)


@dataclass
class Node:
    """One peer of a test, with its kind's foreign writer and readers."""

    label: str
    kind: Kind
    peer: Any
    net: Net

    @property
    def url(self) -> str:
        return str(self.peer.url)

    def insert(self, table: str, values: dict[str, Any], ms: int | None = None) -> None:
        self.kind.insert(self.peer, table, values, self.net.clock(ms))

    def update(self, table: str, key: tuple[Any, ...], values: dict[str, Any], ms: int | None = None) -> None:
        self.kind.update(self.peer, table, key, values, self.net.clock(ms))

    def delete(self, table: str, key: tuple[Any, ...], ms: int | None = None) -> None:
        self.kind.delete(self.peer, table, key, self.net.clock(ms))

    def rows(self, table: str = "item") -> list[tuple[Any, ...]]:
        return self.kind.rows(self.peer, table)

    def state(self) -> dict[str, list[tuple[Any, ...]]]:
        return {t: self.rows(t) for t in ("item", "note")}

    def knowledge(self) -> Knowledge:
        return self.kind.knowledge(self.peer)

    def conflicts(self) -> list[peersync.Conflict]:
        out: list[peersync.Conflict] = self.peer.conflicts(SCOPE)
        return out


@dataclass
class Net:
    combo: tuple[str, ...]
    tmp: Path
    kinds: dict[str, Kind] = field(default_factory=dict)
    nodes: list[Node] = field(default_factory=list)
    now: int = T0

    def clock(self, ms: int | None) -> int:
        """``ms`` after T0 if given, else one second after the last write."""
        self.now = T0 + ms if ms is not None else self.now + 1000
        return self.now

    def __call__(self, *labels: str) -> list[Node]:
        """New peers, their kinds taken from the combination in turn."""
        out = []
        for label in labels:
            name = self.combo[len(self.nodes) % len(self.combo)]
            kind = self.kinds.get(name) or self.kinds.setdefault(name, KINDS[name].fresh(self.tmp))
            node = Node(label, kind, kind.create(label), self)
            self.nodes.append(node)
            out.append(node)
        return out


def sync(a: Node, b: Node, **kw: Any) -> peersync.SyncResult:
    return peersync.sync(a.peer, b.peer, SCOPE, **kw)


def push(a: Node, b: Node, **kw: Any) -> peersync.SyncResult:
    return peersync.sync(a.peer, b.peer, SCOPE, direction="push", **kw)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Each test runs for every combination whose kinds all have the abilities
    its ``needs`` marker names (e.g. ``@pytest.mark.needs("forget-tombstones")``):
    a kind without one is not run, rather than skipped."""
    if "net" not in metafunc.fixturenames:
        return
    needs = [a for m in metafunc.definition.iter_markers("needs") for a in m.args]
    combos = [c for c in COMBOS if all(KINDS[k].can(n) for k in c for n in needs)]
    metafunc.parametrize("net", combos, ids=["+".join(c) for c in combos], indirect=True)


@pytest.fixture(scope="session", autouse=True)
def _server_pools() -> Iterator[None]:
    """The pooled server databases (pool.py) live for the session, then are dropped."""
    yield
    close_pools()


@pytest.fixture
def net(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Net]:
    n = Net(request.param, tmp_path)
    yield n
    for node in n.nodes:
        node.peer.close()
    for kind in n.kinds.values():
        kind.cleanup()
