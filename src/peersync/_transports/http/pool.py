"""A few open connections to the served database, lent one request at a time.

A database adapter's connection serves one caller at a time; a server takes
many requests at once. Connections open lazily up to ``size`` and are reused;
a request that finds none free waits (in its worker thread) up to ``wait``
seconds, then is refused as :class:`~peersync.DatabaseLocked` (503, retry).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from peersync._engine.database import Database
from peersync._engine.errors import DatabaseLocked


class Pool:
    def __init__(self, opener: Callable[[], Database], size: int = 4, wait: float = 30.0) -> None:
        self._open = opener
        self._size = size
        self._wait = wait
        self._free: queue.LifoQueue[Database] = queue.LifoQueue()
        self._all: list[Database] = []
        self._lock = threading.Lock()
        self._closed = False

    @contextmanager
    def peer(self) -> Iterator[Database]:
        db = self._take()
        try:
            yield db
        finally:
            self._free.put(db)

    def _take(self) -> Database:
        try:
            return self._free.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if len(self._all) < self._size:
                db = self._open()
                self._all.append(db)
                return db
        try:
            return self._free.get(timeout=self._wait)
        except queue.Empty:
            raise DatabaseLocked(
                f"the server's {self._size} database connections stayed busy for {self._wait:g} s"
            ) from None

    def close(self) -> None:
        with self._lock:
            for db in self._all:
                db.close()
            self._all.clear()
