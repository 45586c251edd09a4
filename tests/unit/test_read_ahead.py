"""read_ahead (peersync._engine.ahead): the same batches in the same order,
at most two read ahead, the source's errors raised to the consumer, and the
source's stream closed (its thread joined) when the consumer stops early."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from peersync._engine.ahead import read_ahead


class Source:
    def __init__(self, n: int, fail_at: int | None = None) -> None:
        self.n, self.fail_at = n, fail_at
        self.read = 0
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            for i in range(self.n):
                if i == self.fail_at:
                    raise OSError(f"disk gone at {i}")
                self.read += 1
                yield b"batch %d" % i
        finally:
            self.closed = True


def test_the_same_items_in_order() -> None:
    src = Source(50)
    assert list(read_ahead(iter(src))) == [b"batch %d" % i for i in range(50)]
    assert src.closed


def test_it_reads_at_most_two_ahead() -> None:
    src = Source(100)
    it = read_ahead(iter(src))
    assert next(it) == b"batch 0"
    time.sleep(0.3)  # time for the thread to read as far as it may
    assert src.read <= 3  # the one consumed, one in the slot, one in the thread's hand
    it.close()  # type: ignore[attr-defined]
    assert src.closed


def test_an_error_in_the_source_reaches_the_consumer_after_the_items_before_it() -> None:
    it = read_ahead(iter(Source(10, fail_at=4)))
    got = []
    with pytest.raises(OSError, match="disk gone at 4"):
        for item in it:
            got.append(item)
    assert got == [b"batch %d" % i for i in range(4)]


def test_stopping_early_closes_the_source_and_ends_the_thread() -> None:
    before = threading.active_count()
    src = Source(1000)
    it = read_ahead(iter(src))
    for i, _item in enumerate(it):
        if i == 5:
            break
    it.close()  # type: ignore[attr-defined]
    assert src.closed
    assert threading.active_count() == before
