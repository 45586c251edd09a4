"""Two sessions against the same server at once: one peer pushes into it
while another pulls from it (SEMANTICS.md promises 1 and 6: convergence, late
commits are not skipped; docs/design.md, "Rows received in an unfinished
session" and "The tick contract").

A session that ends merges its source's knowledge: that knowledge may claim
only versions whose rows were enumerable up to the batch that reached the
source's newest tick. Rows an apply commits into the server while another
session reads from it must either be in that session's range or keep it
from claiming their versions.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .servers import Ledger, Server, sqlite_rows, sqlite_write


class _Abort(Exception):
    pass


def test_pull_from_the_server_while_a_push_into_it_is_half_applied(
    server: Server, replica: Callable[[str], str]
) -> None:
    # B pushes rows 4 and 5 into the server one batch at a time and stops
    # after the first (as a session cut by the network would); meanwhile A
    # pulls from the server, its describe before B's batch and its reads after.
    a, b = replica("a"), replica("b")
    ledger = Ledger()
    server.sql("INSERT INTO item VALUES (1, 'server', 0)")
    sqlite_write(b, "INSERT INTO item VALUES (4, 'b', 0)", "INSERT INTO item VALUES (5, 'b', 0)")

    def cut(n: int) -> None:
        if n == 1:
            raise _Abort

    def half_push(n: int) -> None:
        if n == 0:
            with pytest.raises(_Abort):
                ledger.push(b, server.url, before_batch=cut, batch_size=1)

    ledger.push(server.url, a, before_batch=half_push)
    for _ in range(2):
        for src, dst in [(b, server.url), (server.url, a), (a, server.url), (b, a), (a, b)]:
            ledger.push(src, dst)
    assert server.rows() == [(1, "server", 0), (4, "b", 0), (5, "b", 0)]
    assert sqlite_rows(b) == server.rows()
    assert sqlite_rows(a) == server.rows()
    ledger.check()


@pytest.mark.parametrize("pulls", [1, 2], ids=["one-pull", "two-pulls"])
def test_pull_from_the_server_while_a_local_writer_holds_the_bound_after_a_push_into_it(
    server: Server, replica: Callable[[str], str], pulls: int
) -> None:
    # A local writer opens a transaction on the server and stays open; B
    # pushes row 4 into the server (a whole session); A pulls from the
    # server, once or twice (the second pull has nothing due below the bound,
    # while the server's description names row 4's version, as it holds the
    # row: what A merges must not name it); then the writer commits and every
    # pair syncs twice.
    a, b = replica("a"), replica("b")
    ledger = Ledger()
    server.sql("INSERT INTO item VALUES (1, 'server', 0)")
    w = server.writer()
    w.run("INSERT INTO item VALUES (9, 'long', 0)")
    sqlite_write(b, "INSERT INTO item VALUES (4, 'b', 0)")
    ledger.push(b, server.url)
    for _ in range(pulls):
        ledger.push(server.url, a)
    w.commit()
    w.close()
    for _ in range(2):
        for src, dst in [(b, server.url), (server.url, a), (a, server.url), (b, a), (a, b), (server.url, b)]:
            ledger.push(src, dst)
    assert server.rows() == [(1, "server", 0), (4, "b", 0), (9, "long", 0)]
    assert sqlite_rows(b) == server.rows()
    assert sqlite_rows(a) == server.rows()
    ledger.check()
