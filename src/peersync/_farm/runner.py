"""Running a farm: one worker thread per link, each syncing its two servers
in both directions, scope by scope, every ``interval`` seconds.

Why threads and no locks between links: a session's work is in the
destination's transactions (each batch commits with the knowledge it
teaches; ``finish`` is idempotent), so sessions of different links may run
at once against one server, as any server's clients do; one that finds its
rows already delivered by another counts them as known. What must not run
twice at once is a link's own session, and a link has one worker.

A round that fails (a server down, a refused token, a lock held too long)
is logged and the link waits ``backoff`` seconds, doubling after each failed
round up to ``max_backoff``, then ``interval`` again once a round succeeds.
Stopping lets the session in hand finish (or, on :meth:`Farm.abandon`,
leaves it: what it committed stays, the next session sends the rest).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from peersync._api import connect
from peersync._engine.database import Database
from peersync._engine.errors import SyncError, TransportError
from peersync._engine.results import SyncResult
from peersync._engine.session import sync

from .config import FarmConfig, Link

__all__ = ["Farm", "FarmRun", "SessionEvent"]

# A down server is the farm's to retry, on its own backoff: the client's
# in-request retries stay short so a round against one fails fast.
CLIENT_RETRIES = 2


@dataclass(frozen=True)
class SessionEvent:
    """One sync of one scope over one link, both ways, or its failure."""

    link: str
    a: str
    b: str
    scope: str
    round: int  # the link's round, from 1
    at: float  # when the session started (seconds since the epoch)
    seconds: float
    result: SyncResult | None  # on failure: what the push half did, if it completed
    error: str | None = None
    failures: int = 0  # failed rounds of this link in a row, this one included
    retry_in: float | None = None  # seconds until the link tries again

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` line: the sync's counts, and on failure the error,
        ``failures`` and ``retry_in``."""
        r = self.result
        out: dict[str, Any] = {
            "time": _stamp(self.at),
            "link": self.link,
            "a": self.a,
            "b": self.b,
            "scope": self.scope,
            "round": self.round,
            "ok": self.ok,
            "sent_a_to_b": r.sent_a_to_b if r else 0,
            "sent_b_to_a": r.sent_b_to_a if r else 0,
            "conflicts": r.conflicts if r else 0,
            "errors": r.errors if r else 0,
            "completed": bool(r and r.completed),
            "seconds": round(self.seconds, 6),
        }
        if self.error is not None:
            out |= {"error": self.error, "failures": self.failures, "retry_in": self.retry_in}
        return out

    def line(self) -> str:
        """The log line: rows each way, conflicts and duration, or the error."""
        head = f"{_stamp(self.at)} {self.link} {self.scope} #{self.round}:"
        r = self.result
        if self.error is not None:
            wait = f"; retry in {self.retry_in:g} s" if self.retry_in is not None else ""
            return f"{head} failed ({self.error}){wait} (failure {self.failures} in a row)"
        assert r is not None
        tail = "" if r.completed else "; not completed (a source kept changing), the next round brings the rest"
        return (
            f"{head} {self.a}->{self.b} {r.sent_a_to_b} rows, {self.b}->{self.a} {r.sent_b_to_a} rows,"
            f" {r.conflicts} conflicts, {r.errors} errors, {self.seconds * 1000:.1f} ms{tail}"
        )


@dataclass(frozen=True)
class FarmRun:
    """What :meth:`Farm.run` did: sessions run and failed, and how many were
    left in hand when the farm was abandoned."""

    sessions: int
    failed: int
    abandoned: int


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Farm:
    """Keeps the servers of a :class:`FarmConfig` in sync.

    ``on_event`` is called with every :class:`SessionEvent`, one at a time
    (from the links' threads). :meth:`run` blocks until every link has done
    one round (``once=True``) or until :meth:`stop` or :meth:`abandon` is
    called, from another thread or a signal handler. A farm runs once:
    after it stopped, make a new one.

    >>> farm = Farm(load_config("farm.toml"), on_event=lambda e: print(e.line()))  # doctest: +SKIP
    >>> farm.run(once=True).failed  # doctest: +SKIP
    0
    """

    def __init__(
        self,
        config: FarmConfig,
        *,
        on_event: Callable[[SessionEvent], None] | None = None,
        opener: Callable[..., Database] = connect,
    ) -> None:
        self.config = config
        self._on_event = on_event
        self._open_url = opener
        self._stop = threading.Event()
        self._abandon = threading.Event()
        self._lock = threading.Lock()  # events one at a time, and the counts
        self._in_hand: set[str] = set()
        self._sessions = self._failed = 0

    def stop(self) -> None:
        """Start no new session; :meth:`run` returns once those in hand end."""
        self._stop.set()

    def abandon(self) -> None:
        """Return from :meth:`run` now, leaving the sessions in hand to be
        cut with the process (safe: each batch commits with its knowledge)."""
        self._stop.set()
        self._abandon.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self, *, once: bool = False, grace: float | None = None) -> FarmRun:
        """Run every link in its own thread; with ``once``, one round each.
        After :meth:`stop`, waits for the sessions in hand, at most ``grace``
        seconds (default: as long as they take), then leaves them."""
        threads = [
            threading.Thread(target=self._work, args=(link, once), name=f"farm {link.name}", daemon=True)
            for link in self.config.links
        ]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads) and not self._stop.is_set():
            self._stop.wait(0.1)
        deadline = None if grace is None else time.monotonic() + grace
        for t in threads:
            while t.is_alive() and not self._abandon.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                t.join(0.1)
        with self._lock:
            return FarmRun(self._sessions, self._failed, len(self._in_hand))

    def delay(self, failures: int) -> float:
        """Seconds a link waits after ``failures`` failed rounds in a row."""
        if failures == 0:
            return self.config.interval
        return min(self.config.backoff * 2.0 ** min(failures - 1, 62), self.config.max_backoff)

    # -- one link ---------------------------------------------------------------------

    def _open(self, link: Link) -> tuple[Database, Database]:
        opened: list[Database] = []
        try:
            for name in (link.a, link.b):
                s = self.config.server(name)
                if s.remote:
                    opened.append(self._open_url(s.url, token=s.token, ca=s.ca, retries=CLIENT_RETRIES))
                else:
                    opened.append(self._open_url(s.url, timeout=self.config.lock_timeout))
        except BaseException:
            for db in opened:
                db.close()
            raise
        return opened[0], opened[1]

    def _work(self, link: Link, once: bool) -> None:
        peers: tuple[Database, Database] | None = None
        failures = rounds = 0
        try:
            while not self._stop.is_set():
                rounds += 1
                failed = False
                for scope in link.scopes:
                    if self._stop.is_set():
                        break
                    error, peers = self._session(link, scope, rounds, peers, failures, once)
                    failed = failed or error is not None
                    if isinstance(error, TransportError):
                        break  # a server down: the other scopes would only wait on it too
                failures = failures + 1 if failed else 0
                if once:
                    return
                self._stop.wait(self.delay(failures))
        finally:
            _close(peers)

    def _session(
        self,
        link: Link,
        scope: str,
        rounds: int,
        peers: tuple[Database, Database] | None,
        failures: int,
        once: bool,
    ) -> tuple[Exception | None, tuple[Database, Database] | None]:
        """One sync of ``scope`` over ``link``, logged; returns the error, if
        one ended it, and the peers to use next (None after an error)."""
        at, start = time.time(), time.perf_counter()
        result: SyncResult | None = None
        error: str | None = None
        failure: Exception | None = None
        with self._lock:
            self._in_hand.add(link.name)
        try:
            if peers is None:
                peers = self._open(link)
            result = sync(
                peers[0],
                peers[1],
                scope,
                batch_size=self.config.batch_size,
                batch_bytes=self.config.batch_bytes,
                policy=self.config.policy,
            )
        except SyncError as exc:
            error, result, failure = str(exc), exc.result, exc
        except Exception as exc:  # a bug must not end a link's thread unseen
            error, failure = f"unexpected {type(exc).__name__}: {exc}", exc
        if error is not None:
            # Open afresh next time: a restarted server, a replaced file.
            _close(peers)
            peers = None
            failures += 1
        event = SessionEvent(
            link=link.name,
            a=link.a,
            b=link.b,
            scope=scope,
            round=rounds,
            at=at,
            seconds=time.perf_counter() - start,
            result=result,
            error=error,
            failures=failures if error is not None else 0,
            retry_in=self.delay(failures) if error is not None and not once else None,
        )
        with self._lock:
            self._in_hand.discard(link.name)
            self._sessions += 1
            self._failed += error is not None
            if self._on_event is not None and not self._abandon.is_set():
                self._on_event(event)
        return failure, peers


def _close(peers: tuple[Database, Database] | None) -> None:
    if peers is not None:
        for db in peers:
            with contextlib.suppress(Exception):  # closing after a failure: nothing more to do
                db.close()
