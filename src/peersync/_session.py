"""The session engine: moves one scope's changes between two peers.

It talks to peers only through :class:`~peersync._peer.Peer`, so SQLite,
server databases and remote HTTP peers all sync through this one loop.

One one-way session (SEMANTICS.md, "The session"):

1. read both peers' knowledge (the destination's is ``known``);
2. ask the source for batches of what ``known`` lacks, from the tick up to
   which ``known`` holds all of the source's own ticks, up to the source's
   snapshot tick;
3. the destination applies each batch in one transaction with the knowledge
   it teaches, and answers with its new knowledge, used for the next batch;
4. rows that failed (a foreign key whose parent comes later, a constraint)
   are kept out of knowledge; another pass re-enumerates from the first hole
   while passes make progress;
5. only then the destination merges the rest of the source's knowledge,
   minus what it still lacks.

A session interrupted anywhere leaves the destination with the batches it
committed and knowledge that matches them; the next session resumes.
"""

from __future__ import annotations

import time

from ._errors import ConfigurationError, RepairNeeded, ReplicaOutdated, SchemaMismatch
from ._knowledge import Knowledge
from ._model import Conflict, ConflictHandler, Direction, Policy, ReplicaInfo, SessionStats, SyncResult
from ._peer import Peer

DEFAULT_BATCH_ROWS = 5000
DEFAULT_BATCH_BYTES = 4 * 1024 * 1024
MAX_CHASES = 3


def sync(
    a: Peer,
    b: Peer,
    scope: str,
    *,
    direction: Direction | str = Direction.BOTH,
    batch_size: int = DEFAULT_BATCH_ROWS,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    policy: ConflictHandler = Policy.LAST_WRITER_WINS,
) -> SyncResult:
    """Synchronize ``scope`` between peers ``a`` and ``b``.

    ``push`` moves A's changes to B, ``pull`` B's to A, ``both`` does push
    then pull. Safe to repeat: a second call with no new writes sends 0.

    Raises :class:`~peersync.ScopeError` (unknown scope),
    :class:`~peersync.SchemaMismatch` (peers' shapes differ),
    :class:`~peersync.ReplicaOutdated`, :class:`~peersync.ConfigurationError`
    (both are the same replica, bad batch size), and storage or transport
    errors; any batch committed before an error stays committed and counted
    in knowledge.

    >>> import peersync  # doctest: +SKIP
    >>> peersync.sync(peersync.connect("a.db"), peersync.connect("b.db"), "shop").sent_a_to_b  # doctest: +SKIP
    12
    """
    direction = Direction(direction)
    if batch_size < 1 or batch_bytes < 1:
        raise ConfigurationError("batch size must be at least 1")
    start = time.perf_counter()
    sessions = []
    if direction in (Direction.PUSH, Direction.BOTH):
        sessions.append(run_session(a, b, scope, batch_size=batch_size, batch_bytes=batch_bytes, policy=policy))
    if direction in (Direction.PULL, Direction.BOTH):
        sessions.append(run_session(b, a, scope, batch_size=batch_size, batch_bytes=batch_bytes, policy=policy))
    push = sessions[0] if direction is not Direction.PULL else None
    pull = sessions[-1] if direction is not Direction.PUSH else None
    return SyncResult(
        sent_a_to_b=push.sent if push else 0,
        sent_b_to_a=pull.sent if pull else 0,
        applied=sum(s.applied for s in sessions),
        skipped_known=sum(s.skipped_known for s in sessions),
        conflicts=sum(s.conflicts for s in sessions),
        errors=sum(s.errors for s in sessions),
        batches=sum(s.batches for s in sessions),
        bytes=sum(s.bytes for s in sessions),
        seconds=time.perf_counter() - start,
        sessions=tuple(sessions),
    )


def _check_replicas(source: Peer, si: ReplicaInfo, dest: Peer, di: ReplicaInfo, scope: str) -> None:
    """Refuse two peers that are one replica (a copy not reidentified), and a
    peer that is behind what its partner knows of it: a restored backup, or a
    copy that its file's identity did not give away (written back over the same
    file), would stamp versions its partners already know, never to be sent."""
    if si.replica_id == di.replica_id:
        what = "is the same database as" if source.url == dest.url else "holds the same replica as"
        raise ConfigurationError(
            f"{source.url} {what} {dest.url} for scope {scope!r} (the same replica: one is a copy of the other);"
            f" run 'peersync reidentify COPY --scope {scope}' on the copy"
        )
    for peer, info, partner, known in ((source, si, dest, di.knowledge), (dest, di, source, si.knowledge)):
        top = max((hi for _, hi in known.ranges(info.replica_id)), default=0)
        # The source's tick is read again: a concurrent session may have taught
        # the destination newer ticks of it since ``si``.
        if top > info.tick and (peer is dest or top > peer.describe(scope).tick):
            raise RepairNeeded(
                f"{peer.url} is behind what {partner.url} knows of it (scope {scope!r} at tick {info.tick}, known"
                f" there up to {top}): it is a restored backup or an old copy; run"
                f" 'peersync reidentify {peer.url} --scope {scope}' on it"
            )


def run_session(
    source: Peer,
    dest: Peer,
    scope: str,
    *,
    batch_size: int = DEFAULT_BATCH_ROWS,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    policy: ConflictHandler = Policy.LAST_WRITER_WINS,
) -> SessionStats:
    """One one-way session from ``source`` to ``dest``."""
    si = source.describe(scope)
    di = dest.describe(scope)
    if si.fingerprint != di.fingerprint:
        raise SchemaMismatch(
            f"scope {scope!r} differs between {source.url} and {dest.url}"
            f" (fingerprints {si.fingerprint} and {di.fingerprint}); provision both with the same tables and columns"
        )
    _check_replicas(source, si, dest, di, scope)
    if not di.knowledge.contains_knowledge(si.forgotten):
        raise ReplicaOutdated(f"{dest.url} may have missed deletes that {source.url} has cleaned up; reinitialize it")
    known = di.knowledge
    # What to merge at the end: the source's knowledge read in the same
    # snapshot as a final batch (or as the description, if nothing was due).
    # Knowledge read earlier may name versions of rows that changed since and
    # were not sent in this session: merging it would claim them.
    merge: Knowledge | None = None
    upto = si.tick
    sent = applied = skipped = conflicts = deferred = batches = nbytes = 0
    excluded = Knowledge.empty()
    failures: list[Conflict] = []
    while True:
        after = known.floor(si.replica_id)
        if after >= upto:
            # Nothing of the source's up to the bound is missing (rows that
            # failed earlier were since applied, e.g. by a concurrent session).
            if merge is None and upto == si.tick and excluded.is_empty():
                merge = si.knowledge
            break
        pass_applied = 0
        # A retry pass carries only the rows that failed: let them travel in
        # as few batches as bytes allow, so a chain of rows that depend on each
        # other resolves inside one batch instead of one pass per link.
        rows = batch_size if not failures else max(batch_size, 4 * len(failures))
        excluded, failures = Knowledge.empty(), []
        chases = 0
        while True:
            data = source.changes(scope, known, after, upto, max_rows=rows, max_bytes=batch_bytes)
            report = dest.apply(scope, data, policy)
            batches += 1
            nbytes += len(data)
            sent += report.received
            applied += report.applied
            pass_applied += report.applied
            skipped += report.skipped_known
            conflicts += report.conflicts
            deferred += report.deferred
            excluded = excluded | report.excluded
            failures.extend(report.failed)
            known = report.knowledge
            after = report.last
            if report.final:
                merge = report.made_with
                break
            if after >= upto:
                # The source changed during the session: follow it a few
                # times, then stop; the batches' knowledge stays exact.
                chases += 1
                if chases > MAX_CHASES:
                    break
                upto = source.describe(scope).tick
        if chases > MAX_CHASES:
            break
        # Another pass only for failed rows (e.g. a child whose parent came
        # in a later batch), and only while passes make progress: each pass
        # applies at least one more row, so the loop ends.
        if not failures or pass_applied == 0:
            break
    dest.complete(scope, merge if merge is not None else Knowledge.empty(), excluded)
    dest.log_conflicts(scope, failures)
    return SessionStats(
        source=source.url,
        destination=dest.url,
        sent=sent,
        applied=applied,
        skipped_known=skipped,
        conflicts=conflicts,
        errors=len(failures),
        deferred=deferred,
        batches=batches,
        bytes=nbytes,
        completed=True,
    )
