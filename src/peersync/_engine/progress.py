"""Progress of a sync as events: plain data the session engine hands to a
callback (``sync(..., on_progress=callback)``), with no I/O of its own. The
CLI draws a progress bar from them; an application can log or count them.

A one-way session reports :class:`SessionStarted`, then one
:class:`BatchApplied` per batch the destination applied (in order, with
running totals), then :class:`SessionEnded`. A sync in both directions
reports two such sequences, push then pull. The callback runs in the
engine's thread between batches; an exception it raises stops the sync like
any error (batches already applied stay committed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .results import SessionStats

__all__ = ["BatchApplied", "ProgressCallback", "ProgressEvent", "SessionEnded", "SessionStarted"]


@dataclass(frozen=True)
class SessionStarted:
    """A one-way session begins: ``first_tick..upto`` are the source's ticks
    it will walk (its bound may grow if the source keeps changing)."""

    scope: str
    source: str
    destination: str
    first_tick: int
    upto: int


@dataclass(frozen=True)
class BatchApplied:
    """The destination applied one batch: ``rows`` it carried (``applied`` of
    them written, the rest known or in conflict), ``bytes`` its encoded size,
    ``tick`` the last source tick it covered; ``total_*`` count the session
    so far, this batch included. ``upto`` is the session's current bound."""

    scope: str
    source: str
    destination: str
    rows: int
    applied: int
    bytes: int
    tick: int
    upto: int
    total_rows: int
    total_batches: int
    total_bytes: int
    seconds: float  # since the session started


@dataclass(frozen=True)
class SessionEnded:
    """A one-way session ended (its ``finish`` done); ``stats`` as in the result."""

    scope: str
    stats: SessionStats
    seconds: float


ProgressEvent = SessionStarted | BatchApplied | SessionEnded
ProgressCallback = Callable[[ProgressEvent], None]
