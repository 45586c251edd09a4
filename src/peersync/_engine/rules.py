"""Change triage, conflict classification and resolution: pure functions.

For an incoming change with version ``v`` and a destination row whose
version (as this scope reports it) is ``d``:

- ``v`` in the destination's knowledge: obsolete, skip it;
- no local row, or ``d`` in the source's made-with knowledge: apply it;
- ``v`` and ``d`` made by the same replica: the later one supersedes the
  earlier (a replica knows its own versions), so apply ``v`` if it is later,
  skip it if it is earlier;
- otherwise the destination changed the row concurrently: a conflict.

These are the rules; the SQLite adapter evaluates the same ones set-based in
SQL (``_sqlite_apply``), together with two that need per-row knowledge: an
incoming version that the local row's own made-with record contains is
obsolete, and one whose batch carries extra made-with knowledge for the row
(``_wire``) is checked against it too.

Resolution by last writer wins compares ``(change time, replica id, tick)``,
so every replica that sees the same two versions picks the same winner,
whatever order they arrive in.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, replace

from .errors import ConfigurationError
from .knowledge import Knowledge, Version
from .model import Conflict, ConflictCallback, ConflictHandler, ConflictType, Outcome, Policy, Resolution, Value


class Action(enum.Enum):
    SKIP_KNOWN = "skip"
    APPLY = "apply"
    CONFLICT = "conflict"


@dataclass(frozen=True, slots=True)
class LocalState:
    """The destination's tracking state for one row, in this scope's terms."""

    version: Version
    creation: Version
    deleted: bool
    time: int


def triage(version: Version, local: LocalState | None, made_with: Knowledge, known: Knowledge) -> Action:
    """Decide what an incoming change is, before any policy runs."""
    if known.contains(version[0], version[1]):
        return Action.SKIP_KNOWN
    if local is None or made_with.contains(local.version[0], local.version[1]):
        return Action.APPLY
    # One replica's changes to a row are sequential: it made its later version
    # knowing its earlier one, whatever else the source's knowledge lacks.
    if local.version[0] == version[0]:
        return Action.APPLY if version[1] > local.version[1] else Action.SKIP_KNOWN
    return Action.CONFLICT


def classify(
    local: LocalState, remote_deleted: bool, remote_creation: Version, made_with: Knowledge, known: Knowledge
) -> ConflictType:
    """Name a conflict between a local row and a concurrent incoming change."""
    if local.deleted and remote_deleted:
        return ConflictType.DELETE_DELETE
    if local.deleted:
        return ConflictType.DELETE_UPDATE
    if remote_deleted:
        return ConflictType.UPDATE_DELETE
    # Neither side knew the other's creation: the key was made twice.
    if not made_with.contains(*local.creation) and not known.contains(*remote_creation):
        return ConflictType.INSERT_INSERT
    return ConflictType.UPDATE_UPDATE


def remote_wins_by_time(local_time: int, local_version: Version, remote_time: int, remote_version: Version) -> bool:
    """Last writer wins; ties by replica id, then tick (total and symmetric)."""
    return (remote_time, remote_version[0], remote_version[1]) > (local_time, local_version[0], local_version[1])


def handler_from(policy: object) -> ConflictHandler:
    """A built-in policy (a :class:`Policy` or its name, ``"source-wins"``) or
    a callback; anything else raises :class:`~peersync.ConfigurationError`
    before a session starts, rather than fail (and defer) every conflict."""
    if isinstance(policy, Policy):
        return policy
    if isinstance(policy, str):
        try:
            return Policy(policy)
        except ValueError:
            names = ", ".join(p.value for p in Policy)
            raise ConfigurationError(f"unknown conflict policy {policy!r}: use one of {names}, or a callback") from None
    if callable(policy):
        handler: ConflictCallback = policy
        return handler
    raise ConfigurationError(f"a conflict policy is a Policy, its name or a callable, not {type(policy).__name__}")


def resolve(handler: Policy | ConflictCallback, conflict: Conflict) -> Resolution:
    """Apply a built-in policy or a user callback to one conflict.

    A callback may return a :class:`Resolution`, or an :class:`Outcome` other
    than ``MERGE`` and ``FAILED``. Anything else raises :class:`TypeError`.
    """
    if isinstance(handler, Policy):
        return Resolution(_policy_outcome(handler, conflict))
    answer = handler(conflict)
    if isinstance(answer, Resolution):
        return answer
    if isinstance(answer, Outcome) and answer not in (Outcome.MERGE, Outcome.FAILED):
        return Resolution(answer)
    raise TypeError(f"conflict callback returned {answer!r}, not a Resolution or Outcome")


@dataclass(frozen=True, slots=True)
class Decision:
    """What a conflict's policy decided: the outcome, the conflict as it is
    logged (outcome set; ``detail`` says why a row was deferred against the
    policy), and for ``MERGE`` the whole merged row."""

    outcome: Outcome
    conflict: Conflict
    merged: dict[str, Value] | None = None


def decide(
    handler: Policy | ConflictCallback, conflict: Conflict, columns: Sequence[str], key: Sequence[str]
) -> Decision:
    """Resolve ``conflict`` (a row with ``columns``, keyed by ``key``) as every
    adapter does. A callback that raises defers the row (a failing callback
    must not abort the session); a merge is the local row, overlaid by the
    remote one, overlaid by the callback's columns, and defers the row when it
    changes the key or names columns the table does not have."""
    try:
        res = resolve(handler, conflict)
    except Exception as exc:
        res = Resolution(Outcome.DEFER)
        conflict = replace(conflict, detail=f"callback raised {type(exc).__name__}: {exc}")
    merged = None
    if res.outcome is Outcome.MERGE:
        assert res.row is not None
        merged = {**(conflict.local_row or {}), **(conflict.remote_row or {}), **res.row}
        if set(merged) != set(columns) or any(merged[k] != v for k, v in zip(key, conflict.key, strict=True)):
            res, merged = Resolution(Outcome.DEFER), None
            conflict = replace(conflict, detail="merged row changed the key or named unknown columns")
    return Decision(res.outcome, replace(conflict, outcome=res.outcome), merged)


def both_deleted(
    scope: str, table: str, key: tuple[Value, ...], local: LocalState, version: Version, time: int, wins: bool
) -> Conflict:
    """The log entry of a row both sides deleted: no policy is asked; the
    tombstone that wins by last writer is kept."""
    return Conflict(
        scope, table, key, ConflictType.DELETE_DELETE, None, None, local.version, version, local.time, time,
        Policy.LAST_WRITER_WINS.value, Outcome.SOURCE if wins else Outcome.DESTINATION, "both sides deleted the row",
    )  # fmt: skip


def _policy_outcome(policy: Policy, c: Conflict) -> Outcome:
    if policy is Policy.SOURCE_WINS:
        return Outcome.SOURCE
    if policy is Policy.DESTINATION_WINS:
        return Outcome.DESTINATION
    assert c.local_version is not None and c.local_time is not None
    if remote_wins_by_time(c.local_time, c.local_version, c.remote_time, c.remote_version):
        return Outcome.SOURCE
    return Outcome.DESTINATION


def policy_name(handler: Policy | ConflictCallback) -> str:
    if isinstance(handler, Policy):
        return handler.value
    return "callback:" + getattr(handler, "__qualname__", type(handler).__name__)
