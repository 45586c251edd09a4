"""Applying one batch to an in-memory replica (SEMANTICS.md, "The session",
step 4 and 5): the executable form of the rules every adapter's apply follows.

The batch is decoded and validated whole before anything changes (promise 9:
bad input changes nothing). Every row is then triaged against the state as it
was before the batch, as a set-based SQL apply sees it; conflicts are named
and resolved; only then are rows written, each taking a new local tick, and
the knowledge the batch teaches is stored with them. A Python exception
raised on the way leaves the store as it was, since nothing is written before
the last check.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from peersync._engine import model, rules
from peersync._engine.errors import ProtocolError
from peersync._engine.knowledge import Knowledge, Version
from peersync._engine.wire import decode_batch, open_batch

from .state import Key, Pending, Row, ScopeData, Table, Track, same_row
from .writes import Store, kept_creation


class Step:
    """What happens to one incoming row (the SQLite apply's ``action``)."""

    KNOWN = "known"  # obsolete: skipped
    APPLY = "apply"  # written, with the incoming version
    LEARN = "learn"  # not written (the destination's row wins), the version is learned
    DEFER = "defer"  # not written, kept out of knowledge
    MERGE = "merge"  # a merged row is written as a new local change
    CONFLICT = "conflict"  # to be resolved by the policy (then one of the above)


@dataclass
class Incoming:
    table: Table
    seq: int  # 1-based position among the batch's rows of this table
    lt: int  # the source's local tick
    deleted: bool
    version: Version
    creation: Version
    time: int
    values: Row | None  # every column, None for a tombstone
    key: Key
    record: Knowledge  # what the source had made it with: made_with, plus its extra
    extra: Knowledge  # the row's extra made-with knowledge alone (may be empty)
    step: str = Step.KNOWN


@dataclass
class Rewrite:
    """A conflict outcome written after the batch's rows, as a local change
    made knowing both sides (the SQLite apply's ``_Rewrite``)."""

    kind: str  # "write" (row None: a delete), "merge" or "restamp"
    inc: Incoming
    row: Row | None
    time: int


@dataclass
class Apply:
    store: Store
    sc: ScopeData
    handler: model.ConflictHandler
    report: model.ApplyReport = field(default_factory=model.ApplyReport)
    rewrites: list[Rewrite] = field(default_factory=list)
    excluded: list[Incoming] = field(default_factory=list)
    logged: list[model.Conflict] = field(default_factory=list)

    def run(self, data: bytes) -> model.ApplyReport:
        store, sc = self.store, self.sc
        schemas = {n: store.tables[n].schema for n in sc.tables}
        open_batch(data, sc.name, schemas, sc.fingerprint, sc.rid)
        batch = decode_batch(data, schemas)
        self.batch = batch
        self.known = sc.knowledge.add_range(sc.rid, 1, store.clock)
        self.report = model.ApplyReport(last=batch.last, final=batch.final, made_with=batch.made_with)
        rows = self._incoming()
        for inc in rows:
            inc.step = self._triage(inc)
        # A batch that offers a new version of this very replica is forged:
        # only this replica makes them, and it knows every one it made.
        if any(inc.version[0] == sc.rid and inc.step != Step.KNOWN for inc in rows):
            raise ProtocolError("batch carries a version of this replica that it never made")
        self.report.received = len(rows)
        self.report.skipped_known = sum(inc.step == Step.KNOWN for inc in rows)
        for inc in rows:
            if inc.step == Step.CONFLICT:
                self._conflict(inc)
        # Nothing was written so far: from here on the batch applies whole.
        self._release_pending(rows)
        self._write(rows)
        for rw in self.rewrites:
            self._rewrite(rw)
        excluded = self._keep_pending()
        learned = Knowledge.empty()
        if batch.last >= batch.first:
            learned = learned.add_range(batch.source, batch.first, batch.last)
        learned = learned | Knowledge.from_versions(
            inc.version for inc in rows if inc.step in (Step.APPLY, Step.LEARN, Step.MERGE)
        )
        save_knowledge(sc, sc.knowledge | learned.exclude(excluded))
        log_conflicts(store, sc, self.logged)
        self.report.excluded = excluded
        self.report.knowledge = sc.knowledge.add_range(sc.rid, 1, store.clock)
        return self.report

    def _incoming(self) -> list[Incoming]:
        """The batch's rows, tables ordered by their first row's tick (rows a
        source's trigger derived from others come after them)."""
        b, out = self.batch, []
        names = sorted(b.changes, key=lambda n: b.changes[n][0][0] if b.changes[n] else 0)
        for name in names:
            t = self.store.tables[name]
            marks = b.extra_of.get(name) or [0] * len(b.changes[name])
            for seq, ((lt, deleted, version, creation, time, values), mark) in enumerate(
                zip(b.changes[name], marks, strict=True), start=1
            ):
                extra = b.extras[mark - 1] if mark else Knowledge.empty()
                key = values if deleted else t.key_of(values)
                row = None if deleted else values
                out.append(Incoming(t, seq, lt, deleted, version, creation, time, row, key, b.made_with | extra, extra))
        return out

    def _local(self, inc: Incoming) -> rules.LocalState | None:
        track = inc.table.tracking.get(inc.key)
        if track is None:
            return None
        sc = self.sc
        return rules.LocalState(
            track.version(sc.name, sc.rid), track.creation_in(sc.name, sc.rid), track.deleted, track.time
        )

    def _triage(self, inc: Incoming) -> str:
        """:func:`~peersync._engine.rules.triage`, with the two rules that
        need per-row knowledge (rules.py docstring): an incoming version that
        the local row's own made-with record contains is obsolete, and the
        local version is checked against the row's extra made-with knowledge
        as well as the batch's."""
        if inc.version in self.known:
            return Step.KNOWN
        track = inc.table.tracking.get(inc.key)
        record = track.record(self.sc.name) if track is not None else None
        if record is not None and inc.version in record:
            return Step.KNOWN
        action = rules.triage(inc.version, self._local(inc), inc.record, self.known)
        return {
            rules.Action.SKIP_KNOWN: Step.KNOWN,
            rules.Action.APPLY: Step.APPLY,
            rules.Action.CONFLICT: Step.CONFLICT,
        }[action]

    def _conflict(self, inc: Incoming) -> None:
        """Classify and resolve one conflict (SEMANTICS.md, "Conflicts")."""
        sc, t = self.sc, inc.table
        loc = self._local(inc)
        assert loc is not None
        kind = rules.classify(loc, inc.deleted, inc.creation, self.batch.made_with, self.known)
        local_row = None if loc.deleted else t.rows[inc.key]
        remote = None if inc.values is None else t.as_dict(inc.values)
        local = None if local_row is None else t.as_dict(local_row)
        if (loc.deleted and inc.deleted) or (
            local_row is not None and inc.values is not None and same_row(local_row, inc.values)
        ):
            # Both sides hold the same content: no policy is asked. The row
            # keeps whichever version wins by last writer (SEMANTICS.md
            # "Knowledge is what the rows hold or beat"): learning the newer
            # version while holding the older would let a third version with a
            # time between them win here and nowhere else.
            wins = rules.remote_wins_by_time(loc.time, loc.version, inc.time, inc.version)
            inc.step = Step.APPLY if wins else Step.LEARN
            if loc.deleted:
                self.report.conflicts += 1
                self.logged.append(
                    rules.both_deleted(sc.name, t.schema.name, inc.key, loc, inc.version, inc.time, wins)
                )
            return
        conflict = model.Conflict(
            sc.name, t.schema.name, inc.key, kind, local, remote, loc.version, inc.version, loc.time, inc.time,
            rules.policy_name(self.handler),
        )  # fmt: skip
        d = rules.decide(self.handler, conflict, t.schema.columns, t.schema.key)
        self.report.conflicts += 1
        # Under last writer wins every replica picks the same winner, which
        # keeps its own version. Any other policy may decide otherwise
        # elsewhere: its winner becomes a new local change made knowing both
        # (change time: the later of the two), so the decision reaches every
        # replica, those that already hold both versions included.
        lww = self.handler is model.Policy.LAST_WRITER_WINS
        both = max(loc.time, inc.time)
        if d.outcome is model.Outcome.SOURCE:
            inc.step = Step.APPLY if lww else Step.LEARN
            if not lww:
                self.rewrites.append(Rewrite("write", inc, inc.values, both))
        elif d.outcome is model.Outcome.DESTINATION:
            inc.step = Step.LEARN
            if not lww:
                self.rewrites.append(Rewrite("restamp", inc, local_row, both))
        elif d.merged is not None:
            inc.step = Step.MERGE
            self.rewrites.append(Rewrite("merge", inc, tuple(d.merged[c] for c in t.schema.columns), both + 1))
        if d.outcome is model.Outcome.DEFER:
            inc.step = Step.DEFER
            self.report.deferred += 1
            self.excluded.append(inc)
        self.logged.append(d.conflict)

    def _release_pending(self, rows: list[Incoming]) -> None:
        """Forget pending changes of rows this batch writes or resolves whose
        version the row now holds or beats: the incoming version itself, or
        one the source knew when it sent its row."""
        settled = {
            (inc.table.schema.name, inc.key): inc for inc in rows if inc.step in (Step.APPLY, Step.LEARN, Step.MERGE)
        }
        for p in list(self.sc.pending):
            inc = settled.get((p.table, p.key))
            if inc is not None and (p.version == inc.version or p.version in inc.record):
                self.sc.pending.discard(p)

    def _write(self, rows: list[Incoming]) -> None:
        """Write the rows to apply. Each row of the batch is given tick
        ``clock + its position``: ticks of rows not written stay unused."""
        base = self.store.clock
        top = base
        for pos, inc in enumerate(rows, start=1):
            if inc.step != Step.APPLY:
                continue
            t, sc = inc.table, self.sc
            creation = None
            if inc.creation != inc.version:
                creation = (None if inc.creation[0] == sc.rid else inc.creation[0], inc.creation[1])
            t.tracking[inc.key] = Track(
                base + pos, inc.version, sc.name, creation, inc.time, inc.deleted, (sc.name, inc.record)
            )
            if inc.values is None:
                t.rows.pop(inc.key, None)
            else:
                t.rows[inc.key] = inc.values
            self.report.applied += 1
            top = base + pos
        self.store.clock = top

    def _rewrite(self, rw: Rewrite) -> None:
        """Write one conflict outcome as a local change (its change time
        exactly ``rw.time``, or at least it for a merge), pointing at what
        the incoming version was made with, which it supersedes."""
        store, inc = self.store, rw.inc
        t, key = inc.table, inc.key
        prev = t.tracking[key]
        if rw.kind == "restamp":
            # The row's state as it is, as a new change: creation and tombstone kept.
            creation = kept_creation(prev, restart_on_tombstone=False)
            track = Track(store.tick(), None, None, creation, prev.time, prev.deleted)
        elif rw.row is not None and key in t.rows and same_row(t.rows[key], rw.row):
            track = prev  # a merged row equal to the local row: no new change
        else:
            # A real change, tracked as a local write tracks it; an insert on a
            # tombstone starts a new incarnation.
            creation = None if rw.row is not None and key not in t.rows else kept_creation(prev)
            time = max(store.now(), prev.time + 1)
            track = Track(store.tick(), None, None, creation, time, rw.row is None)
            if rw.row is None:
                t.rows.pop(key, None)
            else:
                t.rows[key] = rw.row
        track.time = max(track.time, rw.time) if rw.kind == "merge" else rw.time
        track.made_with = (self.sc.name, inc.record)
        t.tracking[key] = track

    def _keep_pending(self) -> Knowledge:
        """Record the changes kept out of knowledge (deferred rows) as pending:
        they stay out across sessions until their rows apply."""
        src = self.batch.source
        for inc in self.excluded:
            self.sc.pending.add(Pending(inc.table.schema.name, inc.key, inc.version, (src, inc.lt)))
        return Knowledge.from_versions(v for inc in self.excluded for v in (inc.version, (src, inc.lt)))


def save_knowledge(sc: ScopeData, k: Knowledge) -> None:
    """Store ``k`` as the scope's knowledge of other replicas, minus every
    pending change, so no merge from any peer claims one."""
    sc.knowledge = k.exclude(sc.pending_knowledge()).without(sc.rid)


def log_conflicts(store: Store, sc: ScopeData, conflicts: list[model.Conflict]) -> None:
    """Append to the conflict log; a row that keeps failing has one error
    entry, brought up to date each time, not one more per session."""
    at = store.now()
    for c in conflicts:
        if c.type is model.ConflictType.ERROR:
            for i, old in enumerate(sc.conflicts):
                if old.type is model.ConflictType.ERROR and old.table == c.table and old.key == c.key:
                    sc.conflicts[i] = replace(c, id=old.id, logged_at=at)
                    break
            else:
                store.logged += 1
                sc.conflicts.append(replace(c, id=store.logged, logged_at=at))
            continue
        store.logged += 1
        sc.conflicts.append(replace(c, id=store.logged, logged_at=at))
