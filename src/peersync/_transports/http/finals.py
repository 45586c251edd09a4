"""What a served destination lets ``finish`` merge (docs/protocol.md, "Finish
merges only what a final batch justified").

A session ends with ``finish``, whose ``merge`` is the source's knowledge
(design.md, "The session", step 6). Merging knowledge claims every version in
it: a version claimed but not held is never sent here again, a lost update.
Over HTTP the caller is not trusted with that claim: a write-token holder
could otherwise make the server claim versions it never received.

So the server keeps, per scope, the final batches applied here (their source,
``last`` tick and made-with knowledge), and ``finish`` merges the part of
``merge`` this replica does not already know only when one such batch vouches
for it: its made-with knowledge contains ``merge``, and this replica now knows
every tick of that batch's source from 1 to its ``last`` (so it holds, or
keeps pending and excluded, every change the source had made when it read
that knowledge). Otherwise the merge is dropped and only what the batches
taught stays; the rest of the session's end (its id, failures, maintenance)
happens as usual. A dropped honest merge costs nothing but time: the next
session asks the source for a final batch and merges then.

The ledger lives in the server process: a restart, or ``finish`` reaching
another worker than the final ``apply``, drops that one merge, never adds one.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from peersync._engine.knowledge import Knowledge
from peersync._engine.model import SessionEnd

KEPT = 256  # final batches remembered per scope
MAX_FRAGMENTS = 4096  # a made-with knowledge larger than this is not remembered


@dataclass(frozen=True)
class Final:
    """A final batch applied here."""

    source: bytes
    last: int
    made_with: Knowledge


class FinalLedger:
    """The recent final batches applied per scope; safe across threads."""

    def __init__(self, kept: int = KEPT) -> None:
        self._kept = kept
        self._by_scope: dict[str, deque[Final]] = {}
        self._lock = threading.Lock()

    def record(self, scope: str, final: Final) -> None:
        if final.made_with.fragments() > MAX_FRAGMENTS:
            return  # never vouched for: the finish that needs it merges nothing
        with self._lock:
            kept = self._by_scope.setdefault(scope, deque(maxlen=self._kept))
            if final not in kept:
                kept.append(final)

    def justified(self, scope: str, merge: Knowledge, known: Knowledge) -> bool:
        """Whether this replica, knowing ``known``, may merge ``merge``."""
        if known.contains_knowledge(merge):
            return True
        with self._lock:
            kept = list(self._by_scope.get(scope, ()))
        return any(f.made_with.contains_knowledge(merge) and known.floor(f.source) >= f.last for f in reversed(kept))

    def vet(self, scope: str, end: SessionEnd, known: Knowledge) -> SessionEnd:
        """``end`` as it may be finished here: its merge dropped unless justified."""
        if self.justified(scope, end.merge, known):
            return end
        return SessionEnd(end.session, Knowledge.empty(), end.excluded, end.failures)
