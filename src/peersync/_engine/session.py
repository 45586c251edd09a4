"""The session engine: moves one scope's changes between two peers.

It talks to peers only through :class:`~peersync._peer.Peer`, so SQLite,
server databases and remote HTTP peers all sync through this one loop.

One one-way session (docs/design.md, "The session"):

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
import uuid

from .ahead import read_ahead
from .errors import ConfigurationError, RepairNeeded, ReplicaOutdated, SchemaMismatch, SyncError
from .knowledge import Knowledge
from .model import ApplyReport, Conflict, ConflictHandler, Direction, Policy, ReplicaInfo, SessionEnd
from .peer import Peer
from .progress import BatchApplied, ProgressCallback, SessionEnded, SessionStarted
from .results import SessionStats, SyncResult
from .rules import handler_from
from .schema import difference

DEFAULT_BATCH_ROWS = 5000
# The default while the destination knows none of the source's changes (an
# initial sync): each batch is a write transaction at the destination, whose
# commit costs several fsyncs (a quarter of an initial sync's time in 5,000-row
# batches on a busy disk), so fewer, larger ones. ``batch_bytes`` still bounds
# a batch's size, and so its memory.
INITIAL_BATCH_ROWS = 20_000
DEFAULT_BATCH_BYTES = 4 * 1024 * 1024
MAX_BATCH = 2**63 - 1  # batch limits reach SQL, whose integers have 64 bits
MAX_CHASES = 3


def _check_limits(batch_size: int | None, batch_bytes: int) -> None:
    for name, value in (("batch size", batch_size), ("batch bytes", batch_bytes)):
        if value is None and name == "batch size":
            continue
        if type(value) is not int or not 1 <= value <= MAX_BATCH:
            raise ConfigurationError(f"{name} must be an integer from 1 to {MAX_BATCH}, not {value!r}")


def sync(
    a: Peer,
    b: Peer,
    scope: str,
    *,
    direction: Direction | str = Direction.BOTH,
    batch_size: int | None = None,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    policy: ConflictHandler | str = Policy.LAST_WRITER_WINS,
    on_progress: ProgressCallback | None = None,
) -> SyncResult:
    """Synchronize ``scope`` between peers ``a`` and ``b``.

    ``push`` moves A's changes to B, ``pull`` B's to A, ``both`` does push
    then pull. ``policy`` is a :class:`~peersync.Policy`, its name
    (``"source-wins"``) or a callback. ``batch_size`` is the most rows per
    batch (each batch is one transaction at the destination); by default
    :data:`DEFAULT_BATCH_ROWS`, or :data:`INITIAL_BATCH_ROWS` in a session
    whose destination knows none of its source's changes (an initial sync);
    ``batch_bytes`` bounds a batch's size either way. Safe to repeat: a second call with no
    new writes sends 0. ``on_progress`` receives the progress events of
    :mod:`peersync._engine.progress` (session started, batch applied,
    session ended) as they happen.

    Raises :class:`~peersync.ScopeError` (unknown scope),
    :class:`~peersync.SchemaMismatch` (peers' shapes differ),
    :class:`~peersync.ReplicaOutdated`, :class:`~peersync.ConfigurationError`
    (both are the same replica, a bad direction, policy or batch limit), and
    storage or transport errors. Any batch committed before an error stays
    committed and counted in knowledge (the next sync resumes): when the pull
    half of ``both`` fails, the push half has completed, and the exception's
    ``result`` says what it did (``result.completed`` is False).

    >>> import peersync  # doctest: +SKIP
    >>> peersync.sync(peersync.connect("a.db"), peersync.connect("b.db"), "shop").sent_a_to_b  # doctest: +SKIP
    12
    """
    try:
        direction = Direction(direction)
    except ValueError:
        names = ", ".join(d.value for d in Direction)
        raise ConfigurationError(f"unknown direction {direction!r}: use one of {names}") from None
    handler = handler_from(policy)
    _check_limits(batch_size, batch_bytes)
    start = time.perf_counter()
    push = pull = None
    try:
        if direction in (Direction.PUSH, Direction.BOTH):
            push = run_session(
                a, b, scope, batch_size=batch_size, batch_bytes=batch_bytes, policy=handler, on_progress=on_progress
            )
        if direction in (Direction.PULL, Direction.BOTH):
            pull = run_session(
                b, a, scope, batch_size=batch_size, batch_bytes=batch_bytes, policy=handler, on_progress=on_progress
            )
    except SyncError as exc:
        if push is not None:
            exc.result = _result(push, None, start, error=str(exc))
        raise
    return _result(push, pull, start)


def _result(push: SessionStats | None, pull: SessionStats | None, start: float, error: str | None = None) -> SyncResult:
    sessions = tuple(s for s in (push, pull) if s is not None)
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
        sessions=sessions,
        error=error,
    )


def _check_replicas(source: Peer, si: ReplicaInfo, dest: Peer, di: ReplicaInfo, scope: str) -> None:
    """Refuse two peers that are one replica (a copy not reidentified), and a
    peer that is behind what its partner knows of it: a restored backup, or a
    copy that its file's identity did not give away (written back over the same
    file), would stamp versions its partners already know, never to be sent."""
    if si.replica_id == di.replica_id:
        if source.url == dest.url:
            raise ConfigurationError(f"{source.url} is the same database on both sides; sync it with another peer")
        raise ConfigurationError(
            f"{source.url} holds the same replica as {dest.url} for scope {scope!r} (one is a copy of the other);"
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


def _mismatch(source: Peer, dest: Peer, scope: str, fa: str, fb: str) -> str:
    """The message of a fingerprint mismatch: what differs and what to do."""
    head = f"scope {scope!r} differs between {source.url} and {dest.url} (fingerprints {fa} and {fb})"
    migrate = (
        f"after a schema change, run 'peersync init DB --scope {scope} --table ... --migrate' on every peer"
        " (README: Schema changes)"
    )
    try:
        what = difference(source.schemas(scope), dest.schemas(scope), source.url, dest.url)
    except SyncError:  # the peers answered describe but not this: say the general rule
        return f"{head}; {migrate}"
    if what.startswith("the columns") or what.startswith("their stored"):
        return f"{head}: {what}; {migrate}"
    return f"{head}: {what}"


def run_session(
    source: Peer,
    dest: Peer,
    scope: str,
    *,
    batch_size: int | None = None,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    policy: ConflictHandler | str = Policy.LAST_WRITER_WINS,
    on_progress: ProgressCallback | None = None,
) -> SessionStats:
    """One one-way session from ``source`` to ``dest``.

    ``batch_size`` None picks the default of :func:`sync`. Its
    ``completed`` is False when it stopped following a source that kept
    changing (after :data:`MAX_CHASES` rounds): what it sent is committed
    with exact knowledge, and the rest comes with the next session.
    """
    policy = handler_from(policy)
    _check_limits(batch_size, batch_bytes)
    began = time.perf_counter()
    si = source.describe(scope)
    di = dest.describe(scope)
    if si.fingerprint != di.fingerprint:
        raise SchemaMismatch(_mismatch(source, dest, scope, si.fingerprint, di.fingerprint))
    _check_replicas(source, si, dest, di, scope)
    if not di.knowledge.contains_knowledge(si.forgotten):
        raise ReplicaOutdated(f"{dest.url} may have missed deletes that {source.url} has cleaned up; reinitialize it")
    known = di.knowledge
    if batch_size is None:
        initial = not known.ranges(si.replica_id)
        batch_size = INITIAL_BATCH_ROWS if initial else DEFAULT_BATCH_ROWS
    # What to merge at the end: the source's knowledge read in the same
    # snapshot as a final batch. Knowledge read earlier may name versions of
    # rows that changed since and were not sent in this session: merging it
    # would claim them.
    merge: Knowledge | None = None
    upto = si.tick
    sent = applied = skipped = conflicts = deferred = batches = nbytes = 0
    excluded = Knowledge.empty()
    held = Knowledge.empty()  # every change the destination kept out, in any pass
    failures: list[Conflict] = []
    stopped = False  # gave up following a source that kept changing
    # A destination in another process (a served database) applies while
    # this one reads on; a database server on either side works (writes a
    # batch, or reads the next) while this process applies or reads.
    ahead = getattr(dest, "remote", False) is True or any(getattr(p, "server", False) is True for p in (source, dest))
    if on_progress is not None:
        on_progress(SessionStarted(scope, source.url, dest.url, known.floor(si.replica_id) + 1, upto))

    def progress(report: ApplyReport, size: int) -> None:
        if on_progress is not None:
            on_progress(
                BatchApplied(
                    scope, source.url, dest.url, report.received, report.applied, size, report.last, upto,
                    sent, batches, nbytes, time.perf_counter() - began,
                )
            )  # fmt: skip

    while True:
        after = known.floor(si.replica_id)
        if after >= upto:
            # Nothing of the source's up to the bound is missing (rows that
            # failed earlier were since applied, e.g. by a concurrent session).
            if merge is None and upto == si.tick and excluded.is_empty() and not known.contains_knowledge(si.knowledge):
                # The source knows more than the destination, through no row
                # due: the destination merges only what a final batch it
                # applies (an empty one) is made with, which a destination
                # that does not trust its caller can check (a served
                # database, docs/protocol.md "Finish"). Never the
                # description's knowledge itself: that is what the source
                # holds, rows above its bound included (a server's), not
                # what it vouches for (docs/design.md, "The tick contract").
                data = source.changes(scope, known, upto, upto, max_rows=1, max_bytes=batch_bytes)
                report = dest.apply(scope, data, policy)
                batches += 1
                nbytes += len(data)
                sent += report.received
                progress(report, len(data))
                known = report.knowledge
                if report.final and report.excluded.is_empty():
                    merge = report.made_with
            break
        pass_applied = 0
        # A retry pass carries only the rows that failed: let them travel in
        # as few batches as bytes allow, so a chain of rows that depend on each
        # other resolves inside one batch instead of one pass per link.
        rows = batch_size if not failures else max(batch_size, 4 * len(failures))
        # A retry pass carries again only rows an earlier pass sent (and
        # counted): "sent" counts each row once, batches and bytes every trip.
        retry = bool(failures)
        excluded, failures = Knowledge.empty(), []
        chases = 0
        while True:
            # One pass streams batches until the bound or the final one.
            reached = False
            stream = source.batches(scope, known, after, upto, max_rows=rows, max_bytes=batch_bytes)
            if ahead:
                stream = read_ahead(stream)
            try:
                for data in stream:
                    report = dest.apply(scope, data, policy)
                    batches += 1
                    nbytes += len(data)
                    sent += 0 if retry else report.received
                    applied += report.applied
                    pass_applied += report.applied
                    skipped += report.skipped_known
                    conflicts += report.conflicts
                    deferred += report.deferred
                    excluded = excluded | report.excluded
                    held = held | report.excluded
                    failures.extend(report.failed)
                    known = report.knowledge
                    after = report.last
                    progress(report, len(data))
                    if report.final:
                        merge = report.made_with
                        reached = True
                        break
            finally:
                # A stream left early (the destination failed) ends cleanly.
                close = getattr(stream, "close", None)
                if close is not None:
                    close()
            if reached:
                break
            if after >= upto:
                # The source changed during the session: follow it a few
                # times, then stop; the batches' knowledge stays exact.
                chases += 1
                if chases > MAX_CHASES:
                    stopped = True
                    break
                upto = source.describe(scope).tick
        if stopped:
            break
        # Another pass only for failed rows (e.g. a child whose parent came
        # in a later batch), and only while passes make progress: each pass
        # applies at least one more row, so the loop ends.
        if not failures or pass_applied == 0:
            break
    if merge is not None and not known.contains_knowledge(held):
        # A row the destination still lacks (failed, deferred): the source's
        # knowledge may name that row's version at third replicas (their local
        # ticks for it), which no exclusion here can single out. Merging it
        # would claim them, and pass the claim on to peers that never saw the
        # row: their own sources would then skip it. Keep only what the
        # batches taught, exactly; the rest merges once the row applies.
        merge = None
    if batches or failures or not excluded.is_empty() or (merge is not None and not known.contains_knowledge(merge)):
        end = SessionEnd(uuid.uuid4().hex, merge if merge is not None else Knowledge.empty(), excluded, tuple(failures))
        dest.finish(scope, end)
    # else nothing was sent and there is nothing to merge or log: a finish
    # would change nothing (a round trip saved when the destination is remote).
    stats = SessionStats(
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
        completed=not stopped,
    )
    if on_progress is not None:
        on_progress(SessionEnded(scope, stats, time.perf_counter() - began))
    return stats
