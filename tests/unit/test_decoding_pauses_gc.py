"""Decoding a batch runs no garbage collection while its tens of thousands of
row lists are made: each 700 of them would start one, walking the survivors
again and again (about 3% of an initial sync's CPU). The collector is paused
for the decoding alone (the first allocation after it may start one young
collection, which walks them once) and left as it was found."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest

from peersync._engine.wire import collector_paused, unpack_envelope

from .test_wire import SCHEMAS, T0, batch, encode

ROWS = 30_000


def _big_batch() -> bytes:
    changes = [(i, False, (b"S" * 16, i), (b"S" * 16, i), T0 + i, (i, f"item {i}", i, 1.5)) for i in range(1, ROWS + 1)]
    return encode(batch({"item": changes}, first=1, last=ROWS))


@pytest.fixture
def collections() -> Iterator[list[int]]:
    """The generations of the collections that run while the test does."""
    seen: list[int] = []

    def count(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            seen.append(info["generation"])

    gc.callbacks.append(count)
    try:
        yield seen
    finally:
        gc.callbacks.remove(count)


def test_decoding_a_large_batch_starts_no_collection(collections: list[int]) -> None:
    data = _big_batch()
    assert gc.isenabled()
    gc.collect()
    collections.clear()
    msgpack.unpackb(data, raw=False)  # the same decoding, collector on: it collects over and over
    assert len(collections) > 10, "the test no longer shows what it guards against"
    collections.clear()
    env = unpack_envelope(data, SCHEMAS)
    assert len(env.tables[0][2]) == ROWS
    assert collections in ([], [0])
    assert gc.isenabled()


def test_the_collector_is_left_as_it_was_found() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_paused():
        assert not gc.isenabled()
        raise RuntimeError("boom")
    assert gc.isenabled()  # back on after an error too
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # a program that turned it off keeps it off
    finally:
        gc.enable()
