"""A server database as the destination of a push receives nothing it holds,
even while the rows it holds lie above its snapshot bound (SEMANTICS.md
promise 3, no redundancy, with promises 5 and 6; docs/design.md, "The tick
contract", third rule).

A session into a server commits rows above the server's bound: on
PostgreSQL a local writer's open transaction holds the bound down; on
MariaDB an apply's rows stay unsealed until the next seal. The server must
still report every version it holds as a destination, so no source sends one
of them again; and as a source it must still hand out no knowledge of those
rows until they travel (a pull meanwhile claims nothing it did not receive).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .servers import Ledger, Server, sqlite_rows, sqlite_write


def _settle(ledger: Ledger, *names: str) -> None:
    """Two rounds of pushes between every pair of ``names``."""
    for _ in range(2):
        for src in names:
            for dst in names:
                if src != dst:
                    ledger.push(src, dst)


def test_push_into_postgresql_sends_nothing_it_holds_above_its_bound(
    pg_server: Server, replica: Callable[[str], str]
) -> None:
    # A local writer opens a transaction on the server and stays open: every
    # tick taken after its first is above the server's bound. B pushes row 4
    # into the server (committed above the bound); then B pushes again and C,
    # which got row 4 from B, pushes too: the server holds row 4, so neither
    # may send it. A pulls meanwhile and must not learn row 4's version.
    server = pg_server
    a, b, c = replica("a"), replica("b"), replica("c")
    ledger = Ledger()
    server.sql("INSERT INTO item VALUES (1, 'server', 0)")
    w = server.writer()
    w.run("INSERT INTO item VALUES (9, 'long', 0)")
    sqlite_write(b, "INSERT INTO item VALUES (4, 'b', 0)")
    ledger.push(b, c)
    assert ledger.push(b, server.url).sent_a_to_b == 1
    for src in (b, c):
        again = ledger.push(src, server.url)
        assert (again.sent_a_to_b, again.skipped_known) == (0, 0), f"from {src}"
    for _ in range(2):
        ledger.push(server.url, a)
    assert sqlite_rows(a) == [(1, "server", 0)]  # row 4 is above the bound: not yet sent
    w.commit()
    w.close()
    _settle(ledger, server.url, a, b, c)
    assert server.rows() == [(1, "server", 0), (4, "b", 0), (9, "long", 0)]
    for r in (a, b, c):
        assert sqlite_rows(r) == server.rows()
    ledger.check()


@pytest.fixture
def after_next_seal(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Callable[[], None]], None]]:
    """``after_next_seal(f)``: run ``f`` right after the next MariaDB seal,
    once (a describe seals, then opens its snapshot: ``f`` commits in between,
    as a concurrent session's apply may)."""
    from peersync._adapters.mysql import schema as mysql_schema  # needs the MariaDB driver

    real = mysql_schema.seal
    armed: list[Callable[[], None]] = []

    def seal(conn: Any) -> int:
        top = real(conn)
        if armed:
            armed.pop()()
        return top

    monkeypatch.setattr(mysql_schema, "seal", seal)
    yield armed.append
    assert not armed, "no seal ran"


class _Cut(Exception):
    pass


def test_push_into_mariadb_sends_nothing_it_holds_unsealed(
    mysql_server: Server, replica: Callable[[str], str], after_next_seal: Callable[[Callable[[], None]], None]
) -> None:
    # C pushes into the server; between the seal of the server's describe and
    # its snapshot, B's session into the server applies one batch (row 4) and
    # is cut before the next: row 4 is committed unsealed, with its version
    # in the server's knowledge. C got row 4 from B: it must not send it.
    server = mysql_server
    a, b, c = replica("a"), replica("b"), replica("c")
    ledger = Ledger()
    server.sql("INSERT INTO item VALUES (1, 'server', 0)")
    sqlite_write(b, "INSERT INTO item VALUES (4, 'b', 0)", "INSERT INTO item VALUES (5, 'b', 0)")
    ledger.push(b, c)

    def cut(n: int) -> None:
        if n == 1:
            raise _Cut

    def half_push() -> None:
        with pytest.raises(_Cut):
            ledger.push(b, server.url, before_batch=cut, batch_size=1)

    after_next_seal(half_push)
    from_c = ledger.push(c, server.url, batch_size=1)
    assert ledger.received(server.url) == 2  # row 4 from B, row 5 from C
    assert from_c.skipped_known == 0
    _settle(ledger, server.url, a, b, c)
    assert server.rows() == [(1, "server", 0), (4, "b", 0), (5, "b", 0)]
    for r in (a, b, c):
        assert sqlite_rows(r) == server.rows()
    ledger.check()
