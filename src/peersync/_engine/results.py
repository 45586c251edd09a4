"""What a sync reports: plain numbers, so that errors can carry them
without importing the rest of the model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["SessionStats", "SyncResult"]


@dataclass(frozen=True)
class SessionStats:
    """One one-way session.

    ``sent`` counts the changes the source sent, each once: a row that failed
    and travelled again in a retry pass (a child before its parent, say) is
    not counted again, while ``batches`` and ``bytes`` count every trip.
    ``applied`` counts the rows the destination wrote, ``errors`` the rows
    that still failed at the end (in its conflict log).
    """

    source: str
    destination: str
    sent: int
    applied: int
    skipped_known: int
    conflicts: int
    errors: int
    deferred: int
    batches: int
    bytes: int
    # False when the session stopped following a source that kept changing:
    # what it sent is committed, the source's newer changes come next time.
    completed: bool


@dataclass(frozen=True)
class SyncResult:
    """What :func:`peersync.sync` did: the counts the CLI prints with ``--json``.

    ``sent_a_to_b`` and ``sent_b_to_a`` count each change sent once, however
    many passes it took to apply (see :class:`SessionStats`).

    ``completed`` is False when a session stopped following a source that kept
    changing, or when ``error`` ended the sync after its push half (see
    :attr:`peersync.SyncError.result`).
    """

    sent_a_to_b: int
    sent_b_to_a: int
    applied: int
    skipped_known: int
    conflicts: int
    errors: int
    batches: int
    bytes: int
    seconds: float
    sessions: tuple[SessionStats, ...]
    error: str | None = None

    @property
    def completed(self) -> bool:
        return self.error is None and all(s.completed for s in self.sessions)

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` object; it has ``error`` only when one ended the sync."""
        out: dict[str, Any] = {
            "sent_a_to_b": self.sent_a_to_b,
            "sent_b_to_a": self.sent_b_to_a,
            "applied": self.applied,
            "skipped_known": self.skipped_known,
            "conflicts": self.conflicts,
            "errors": self.errors,
            "batches": self.batches,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 6),
            "completed": self.completed,
        }
        if self.error is not None:
            out["error"] = self.error
        return out
