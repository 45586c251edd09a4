"""A session's final ``apply`` ends it on the server (docs/protocol.md,
"Finishing with the final batch"): an incremental push costs two requests,
not three, and the server ends a session that way only when the batch just
applied vouches for the merge and nothing was kept out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import peersync
from peersync._engine.knowledge import Knowledge
from peersync._engine.model import ConflictType

from ..helpers import write
from .conftest import dump, items, make
from .threaded import ThreadedServer

FINISH = "peersync-finish"
APPLY, DESCRIBE, FINISHED = "/v1/scopes/s/apply", "/v1/scopes/s/describe", "/v1/scopes/s/finish"


class Recording(httpx.HTTPTransport):
    """An httpx transport that records each request's path and whether it
    asked the server to end the session with it."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []
        self.asked: list[bool] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        self.asked.append(FINISH in request.headers)
        return super().handle_request(request)

    def clear(self) -> None:
        self.paths.clear()
        self.asked.clear()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, ThreadedServer]]:
    db = make(
        tmp_path / "served.db", "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER CHECK (qty >= 0));"
    )
    server = ThreadedServer(db)
    yield db, server
    server.stop()


def test_an_incremental_push_costs_two_requests_and_the_next_sends_nothing(
    tmp_path: Path, served: tuple[Path, ThreadedServer]
) -> None:
    db, server = served
    laptop = make(tmp_path / "laptop.db")
    write(laptop, *(f"INSERT INTO item VALUES ({i}, 'laptop {i}', {i})" for i in range(100)))
    rec = Recording()
    with peersync.connect(laptop) as a, peersync.connect(server.url, transport=rec) as b:
        peersync.sync(a, b, "s")
        write(laptop, *(f"UPDATE item SET qty = qty + 1 WHERE id = {i}" for i in range(10)))
        rec.clear()
        r = peersync.sync(a, b, "s", direction="push")
        assert (r.sent_a_to_b, r.batches) == (10, 1)
        assert rec.paths == [DESCRIBE, APPLY] and rec.asked == [False, True]
        # The server merged the final batch's knowledge: it knows all the laptop knows.
        assert b.describe("s").knowledge.contains_knowledge(a.describe("s").knowledge)
        rec.clear()
        r = peersync.sync(a, b, "s", direction="push")
        assert (r.sent_a_to_b, r.batches) == (0, 0)
        assert rec.paths == [DESCRIBE]
    assert items(db) == items(laptop)


def test_a_final_batch_that_skips_ticks_does_not_end_the_session(
    tmp_path: Path, served: tuple[Path, ThreadedServer]
) -> None:
    """A batch whose range starts above what the server knows of its source
    cannot vouch for its made-with knowledge: the server applies it and does
    not merge, so the skipped rows still come with the next session."""
    db, server = served
    laptop = make(tmp_path / "skipping.db")
    write(laptop, *(f"INSERT INTO item VALUES ({i}, 'laptop {i}', {i})" for i in range(1, 4)))
    rec = Recording()
    with peersync.connect(laptop) as a, peersync.connect(server.url, transport=rec) as b:
        tick = a.describe("s").tick
        batch = a.changes("s", Knowledge.empty(), tick - 1, tick, max_rows=100, max_bytes=1 << 20)
        report = b.apply("s", batch, peersync.Policy.LAST_WRITER_WINS)
        assert report.final and report.received == 1 and rec.asked == [True]
        assert not b.describe("s").knowledge.contains_knowledge(report.made_with)
        assert len(items(db)) == 1
        r = peersync.sync(a, b, "s", direction="push")
        assert r.sent_a_to_b == 2
    assert items(db) == items(laptop)


def test_a_session_that_kept_a_row_out_is_ended_by_its_own_finish(
    tmp_path: Path, served: tuple[Path, ThreadedServer]
) -> None:
    """A row the server refuses (its CHECK constraint) is kept out: the final
    batch that follows does not ask to end the session, the client's own
    ``finish`` does, and the failure is logged there."""
    db, server = served
    laptop = make(tmp_path / "refused.db")
    write(laptop, "INSERT INTO item VALUES (1, 'refused', -1)", "INSERT INTO item VALUES (2, 'fine', 2)")
    rec = Recording()
    with peersync.connect(laptop) as a, peersync.connect(server.url, transport=rec) as b:
        r = peersync.sync(a, b, "s", direction="push", batch_size=1)
        assert (r.sent_a_to_b, r.errors) == (2, 1)
        applies = [asked for path, asked in zip(rec.paths, rec.asked, strict=True) if path == APPLY]
        # the first batch is not final; the final one, and the retry pass, follow a refusal
        assert len(applies) >= 2 and not any(applies)
        assert rec.paths[-1] == FINISHED
        assert [c.type for c in b.conflicts("s")] == [ConflictType.ERROR]
        rec.clear()
        assert peersync.sync(a, b, "s", direction="push").sent_a_to_b == 1  # the refused row comes again
    assert items(db) == [(2, "fine", 2)]


def test_a_malformed_finish_header_is_refused_and_changes_nothing(
    tmp_path: Path, served: tuple[Path, ThreadedServer]
) -> None:
    db, server = served
    laptop = make(tmp_path / "malformed.db")
    write(laptop, "INSERT INTO item VALUES (1, 'one', 1)")
    with peersync.connect(laptop) as a:
        batch = a.changes("s", Knowledge.empty(), 0, a.describe("s").tick, max_rows=100, max_bytes=1 << 20)
    before = dump(db)
    for bad in ("x" * 32, "ABCDEF0123456789ABCDEF0123456789", "0" * 33, "", "0" * 31 + "\u00e9"):
        response = httpx.post(
            server.url + APPLY,
            content=batch,
            headers={"content-type": "application/vnd.peersync.batch", FINISH: bad.encode()},
        )
        assert response.status_code == 400, bad
        assert response.headers["peersync-error"] == "protocol"
        assert dump(db) == before


def test_an_end_by_a_final_apply_does_not_stand_for_a_later_session(
    tmp_path: Path, served: tuple[Path, ThreadedServer]
) -> None:
    """A session whose final apply ended it on the server, and whose caller
    then never called ``finish`` (it failed), leaves nothing behind: the next
    session's ``finish`` is sent."""
    import uuid

    from peersync._engine.model import SessionEnd

    _, server = served
    laptop = make(tmp_path / "stale.db")
    write(laptop, "INSERT INTO item VALUES (1, 'one', 1)")
    rec = Recording()
    with peersync.connect(laptop) as a, peersync.connect(server.url, transport=rec) as b:
        tick = a.describe("s").tick
        b.apply(
            "s",
            a.changes("s", Knowledge.empty(), 0, tick, max_rows=10, max_bytes=1 << 20),
            peersync.Policy.LAST_WRITER_WINS,
        )
        assert rec.asked == [True]  # ended there; no finish follows
        write(laptop, "INSERT INTO item VALUES (2, 'two', 2)", "INSERT INTO item VALUES (3, 'three', 3)")
        upto = a.describe("s").tick
        known = b.describe("s").knowledge
        first = a.changes("s", known, tick, upto, max_rows=1, max_bytes=1 << 20)
        assert not b.apply("s", first, peersync.Policy.LAST_WRITER_WINS).final
        rec.clear()
        b.finish("s", SessionEnd(uuid.uuid4().hex, Knowledge.empty(), Knowledge.empty()))
        assert rec.paths == [FINISHED]
