"""Bad input changes nothing (promise 9): a truncated, forged or mismatched
batch is refused with :class:`~peersync.ProtocolError` (or
:class:`~peersync.SchemaMismatch` for another shape) and leaves rows and
knowledge untouched."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

import peersync
from peersync import Knowledge, Policy
from peersync._engine.wire import decode_batch, encode_batch
from peersync.testing import FaultyPeer

from .conftest import Net, Node
from .kinds import SCOPE


def _batch(a: Node, b: Node) -> bytes:
    info = a.peer.describe(SCOPE)
    known = b.knowledge()
    data: bytes = a.peer.changes(SCOPE, known, 0, info.tick, max_rows=100, max_bytes=1 << 20)
    return data


def _setup(net: Net) -> tuple[Node, Node]:
    a, b = net("a", "b")
    b.insert("item", {"id": 9, "name": "mine", "qty": 9})
    a.insert("item", {"id": 1, "name": "pen", "qty": 1})
    a.insert("item", {"id": 2, "name": "ink", "qty": 2})
    return a, b


def _refused(b: Node, data: bytes, error: type[Exception] = peersync.ProtocolError) -> None:
    before = (b.state(), b.knowledge(), len(b.conflicts()))
    with pytest.raises(error):
        b.peer.apply(SCOPE, data, Policy.LAST_WRITER_WINS)
    assert (b.state(), b.knowledge(), len(b.conflicts())) == before


def _forge(a: Node, data: bytes, **changes: Any) -> bytes:
    batch = decode_batch(data, a.peer.schemas(SCOPE))
    return encode_batch(replace(batch, **changes), a.peer.schemas(SCOPE))


@pytest.mark.parametrize("cut", [1, 2, 3])
def test_a_truncated_batch_is_refused(net: Net, cut: int) -> None:
    a, b = _setup(net)
    data = _batch(a, b)
    _refused(b, data[: len(data) * cut // 4])


def test_a_truncated_batch_in_a_session_stops_it_and_changes_nothing(net: Net) -> None:
    a, b = _setup(net)
    before = (b.state(), b.knowledge())
    with pytest.raises(peersync.ProtocolError):
        peersync.run_session(a.peer, FaultyPeer(b.peer, truncate_after=0), SCOPE)
    assert (b.state(), b.knowledge()) == before
    peersync.sync(a.peer, b.peer, SCOPE)
    assert a.rows() == b.rows()


def test_garbage_is_refused(net: Net) -> None:
    _, b = _setup(net)
    for data in (b"", b"\x00" * 40, b"\x93\x01\x02\x03", b"peersync"):
        _refused(b, data)


def test_a_batch_claiming_versions_of_the_destination_is_refused(net: Net) -> None:
    a, b = _setup(net)
    data = _batch(a, b)
    mine = b.peer.describe(SCOPE).replica_id
    batch = decode_batch(data, a.peer.schemas(SCOPE))
    forged_rows = [(lt, d, (mine, 50 + lt), c, t, v) for lt, d, _, c, t, v in batch.changes["item"]]
    made_with = batch.made_with | Knowledge.from_versions((mine, 50 + lt) for lt, *_ in batch.changes["item"])
    _refused(b, _forge(a, data, changes={"item": forged_rows}, made_with=made_with))


def test_a_batch_from_the_destination_itself_is_refused(net: Net) -> None:
    a, b = _setup(net)
    data = _batch(a, b)
    mine = b.peer.describe(SCOPE).replica_id
    _refused(b, _forge(a, data, source=mine))


def test_a_row_whose_version_the_source_never_knew_is_refused(net: Net) -> None:
    a, b = _setup(net)
    data = _batch(a, b)
    batch = decode_batch(data, a.peer.schemas(SCOPE))
    stranger = bytes(range(16))
    rows = [(lt, d, (stranger, 7), c, t, v) for lt, d, _, c, t, v in batch.changes["item"]]
    _refused(b, _forge(a, data, changes={"item": rows}))


def test_a_batch_of_another_scope_or_shape_is_refused(net: Net) -> None:
    a, b = _setup(net)
    data = _batch(a, b)
    _refused(b, _forge(a, data, scope="other"))
    _refused(b, _forge(a, data, fingerprint="0" * 16), peersync.SchemaMismatch)
