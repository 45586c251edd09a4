"""What a served destination lets ``finish`` merge (docs/protocol.md, "Finish
merges only what a final batch justified").

A session ends with ``finish``, whose ``merge`` is the source's knowledge
(design.md, "The session", step 6). Merging knowledge claims every version in
it: a version claimed but not held is never sent here again, a lost update.
Over HTTP the caller is not trusted with that claim: a write-token holder
could otherwise make the server claim versions it never received.

So the server records the final batches applied here (their source, ``last``
tick and made-with knowledge), and ``finish`` merges the part of ``merge``
this replica does not already know only when one such batch vouches for it:
its made-with knowledge contains ``merge``, and this replica now knows every
tick of that batch's source from 1 to its ``last`` (so it holds, or keeps
pending and excluded, every change the source had made when it read that
knowledge). Otherwise the merge is dropped and only what the batches taught
stays; the rest of the session's end (its id, failures, maintenance) happens
as usual. A dropped honest merge costs nothing but time: the next session
asks the source for a final batch and merges then.

The records live in the served database itself (``_adapters/sql/finals.py``),
so a ``finish`` that reaches another worker process, or a server restarted
since the final ``apply``, still finds them. A database kind without that
table (the in-memory adapter) keeps them in this process.

A final ``apply`` that asks for it (docs/protocol.md, "Finishing with the
final batch") is finished right away instead, on the word of the batch just
applied (:func:`vouches`): then nothing needs recording.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Protocol, runtime_checkable

from peersync._engine.database import Database
from peersync._engine.errors import SyncError
from peersync._engine.knowledge import Knowledge
from peersync._engine.model import SessionEnd

KEPT = 256  # final batches remembered per scope in process (the database keeps as many)
MAX_FRAGMENTS = 4096  # a made-with knowledge larger than this is not recorded

Final = tuple[bytes, int, Knowledge]  # source replica, last tick, made-with knowledge
log = logging.getLogger("peersync.server")


@runtime_checkable
class KeepsFinals(Protocol):
    """A database that records final batches in its own metadata."""

    def keep_final(self, scope: str, final: Final, known: Knowledge) -> None: ...

    def kept_finals(self, scope: str) -> list[Final]: ...


def vouches(final: Final, merge: Knowledge, known: Knowledge) -> bool:
    """Whether ``final`` lets a replica that knows ``known`` merge ``merge``."""
    source, last, made_with = final
    return made_with.contains_knowledge(merge) and known.floor(source) >= last


class FinalLedger:
    """The final batches applied per scope: in the database where it can keep
    them, else in this process; safe across threads."""

    def __init__(self, kept: int = KEPT) -> None:
        self._kept = kept
        self._by_scope: dict[str, deque[Final]] = {}
        self._lock = threading.Lock()

    def record(self, db: Database, scope: str, final: Final, known: Knowledge) -> None:
        """Remember ``final``, applied to ``db`` whose scope now knows ``known``.
        A record that cannot be written (the database failed after the apply
        committed) is logged and skipped: it can only drop a merge, never add one."""
        if final[2].fragments() > MAX_FRAGMENTS:
            return  # never vouched for: the finish that needs it merges nothing
        if known.contains_knowledge(final[2]):
            return  # it vouches for nothing this replica does not know (a replayed batch)
        if isinstance(db, KeepsFinals):
            try:
                db.keep_final(scope, final, known)
            except SyncError as exc:
                log.warning("could not record a final batch of scope %r: %s", scope, exc)
            return
        with self._lock:
            kept = self._by_scope.setdefault(scope, deque(maxlen=self._kept))
            if final not in kept:
                kept.append(final)

    def justified(self, db: Database, scope: str, merge: Knowledge, known: Knowledge) -> bool:
        """Whether ``db``'s replica of ``scope``, knowing ``known``, may merge ``merge``."""
        if known.contains_knowledge(merge):
            return True
        if isinstance(db, KeepsFinals):
            kept = db.kept_finals(scope)
        else:
            with self._lock:
                kept = list(reversed(self._by_scope.get(scope, ())))
        return any(vouches(f, merge, known) for f in kept)

    def vet(self, db: Database, scope: str, end: SessionEnd, known: Knowledge) -> SessionEnd:
        """``end`` as it may be finished here: its merge dropped unless justified."""
        if self.justified(db, scope, end.merge, known):
            return end
        return SessionEnd(end.session, Knowledge.empty(), end.excluded, end.failures)
