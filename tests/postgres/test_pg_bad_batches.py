"""A malformed, truncated, forged or mismatched batch is refused by a
PostgreSQL peer with ProtocolError (or SchemaMismatch) and changes nothing."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import peersync
from peersync import Policy
from peersync._engine.wire import decode_batch, encode_batch

from .helpers import ITEM_PG, pg_rows, sqlite_db, sqlite_write


@pytest.fixture
def pair(make_pg: Callable[..., str], tmp_path: Path) -> Iterator[tuple[peersync.Database, peersync.Database]]:
    path = sqlite_db(tmp_path / "a.db")
    sqlite_write(path, "INSERT INTO item VALUES (1, 'a', 1, 1.0)", "INSERT INTO item VALUES (2, 'b', 2, 2.0)")
    url = make_pg(ITEM_PG + "; INSERT INTO item VALUES (9, 'pg', 9, 9.0)")
    src, dst = peersync.connect(path), peersync.connect(url)
    src.provision("s", ["item"])
    dst.provision("s", ["item"])
    yield src, dst
    src.close()
    dst.close()


def _batch(src: peersync.Database, dst: peersync.Database) -> bytes:
    info = dst.describe("s")
    return src.changes("s", info.knowledge, 0, src.describe("s").tick, max_rows=100, max_bytes=1 << 20)


def _forge(data: bytes, dst: peersync.Database, **changes: Any) -> bytes:
    schemas = dst.schemas("s")
    return encode_batch(dataclasses.replace(decode_batch(data, schemas), **changes), schemas)


def _snapshot(dst: peersync.Database) -> tuple[Any, ...]:
    st = dst.status("s")[0]
    return pg_rows(dst.url), st.knowledge, st.tracked_rows, st.conflicts, st.pending


def test_each_bad_batch_is_refused_and_changes_nothing(pair: tuple[peersync.Database, peersync.Database]) -> None:
    src, dst = pair
    good = _batch(src, dst)
    before = _snapshot(dst)
    batch = decode_batch(good, dst.schemas("s"))
    own = dst.describe("s").replica_id
    ((table, rows),) = batch.changes.items()
    lt, deleted, _, creation, ctime, values = rows[0]
    forged_own = (lt, deleted, (own, 10**6), creation, ctime, values)
    bad = {
        "truncated": good[:-7],
        "garbage": os.urandom(200),
        "empty": b"",
        "other scope": _forge(good, dst, scope="t"),
        "from itself": _forge(good, dst, source=own),
        "beyond made_with": _forge(good, dst, last=batch.last + 100),
        "version never made here": _forge(
            good,
            dst,
            changes={table: [forged_own, *rows[1:]]},
            made_with=batch.made_with.add(own, 10**6),
        ),
    }
    for name, data in bad.items():
        with pytest.raises(peersync.ProtocolError):
            dst.apply("s", data, Policy.LAST_WRITER_WINS)
        assert _snapshot(dst) == before, name
    with pytest.raises(peersync.SchemaMismatch):
        dst.apply("s", _forge(good, dst, fingerprint="0" * 16), Policy.LAST_WRITER_WINS)
    assert _snapshot(dst) == before
    report = dst.apply("s", good, Policy.LAST_WRITER_WINS)  # the genuine batch still applies
    assert report.applied == 2
    assert dst.apply("s", good, Policy.LAST_WRITER_WINS).applied == 0  # and a second time is a no-op
