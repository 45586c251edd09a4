"""The endpoints of docs/protocol.md: each decodes and checks its request,
makes one Peer call on a pooled connection (in a worker thread, since the
adapters block) and encodes the answer. Nothing is written before the whole
request was read and decoded."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from typing import TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from peersync._engine import codec
from peersync._engine.database import Database
from peersync._engine.errors import ConfigurationError, ProtocolError
from peersync._engine.knowledge import Knowledge
from peersync._engine.model import ApplyReport, SessionEnd
from peersync._engine.wire import batch_end, batch_head

from .auth import authorize, presented, readable
from .config import State, health_body
from .finals import vouches
from .limits import Refusal, read_body
from .media import BATCH, FINISH_HEADER, FINISHED_HEADER, MESSAGE, PREFIX, SNAPSHOT, STREAM
from .snapshot import snapshot_frames
from .tokens import Right

T = TypeVar("T")
log = logging.getLogger("peersync.server")
_SESSION = re.compile("[0-9a-f]{32}")


def routes(state: State) -> list[Route]:
    limits = state.config.limits

    async def call(fn: Callable[[Database], T]) -> T:
        def run() -> T:
            with state.pool.peer() as db:
                return fn(db)

        return await run_in_threadpool(run)

    def guard(request: Request, need: Right) -> str:
        scope: str = request.path_params["scope"]
        state.served(scope)
        authorize(request, state.tokens, scope, need)
        return scope

    async def health(request: Request) -> Response:
        return Response(health_body(), media_type="application/json")

    async def all_status(request: Request) -> Response:
        presented(request, state.tokens)  # a token that is not valid is 401 even here

        def run(db: Database) -> bytes:
            names = state.config.scopes if state.config.scopes is not None else tuple(db.scopes())
            shown = [n for n in names if readable(request, state.tokens, n)]
            return codec.STATUSES.encode([s for n in shown for s in db.status(n)])

        return message(await call(run))

    async def status(request: Request) -> Response:
        scope = guard(request, Right.READ)
        return message(await call(lambda db: codec.STATUSES.encode(db.status(scope))))

    async def describe(request: Request) -> Response:
        scope = guard(request, Right.READ)
        return message(await call(lambda db: codec.REPLICA_INFO.encode(db.describe(scope))))

    async def schemas(request: Request) -> Response:
        scope = guard(request, Right.READ)
        return message(await call(lambda db: codec.SCHEMAS.encode(db.schemas(scope))))

    async def conflicts(request: Request) -> Response:
        scope = guard(request, Right.READ)
        raw = request.query_params.get("limit", "1000")
        if not raw.isdigit() or not 1 <= int(raw) <= limits.max_conflicts:
            raise Refusal(400, ConfigurationError(f"limit must be an integer from 1 to {limits.max_conflicts}"))
        n = int(raw)
        return message(await call(lambda db: codec.CONFLICTS.encode(db.conflicts(scope, limit=n))))

    async def changes_request(request: Request, scope: str) -> codec.ChangesRequest:
        body = await read_body(request, limits, MESSAGE)
        req = codec.CHANGES_REQUEST.decode(body, max_size=limits.max_body)
        # A capped batch is still exact (its ``last`` says where it stopped).
        return codec.ChangesRequest(
            req.known, req.after, req.upto, min(req.max_rows, limits.max_rows), min(req.max_bytes, limits.max_bytes)
        )

    async def changes(request: Request) -> Response:
        scope = guard(request, Right.READ)
        r = await changes_request(request, scope)
        data = await call(
            lambda db: db.changes(scope, r.known, r.after, r.upto, max_rows=r.max_rows, max_bytes=r.max_bytes)
        )
        return Response(data, media_type=BATCH)

    async def batches(request: Request) -> Response:
        scope = guard(request, Right.READ)
        r = await changes_request(request, scope)
        # The first batch is read before the response starts, so an error
        # there (an unknown scope, a locked database) gets its status code.
        frames = await run_in_threadpool(open_pass, state, scope, r)
        return StreamingResponse(frames, media_type=STREAM)

    async def snapshot(request: Request) -> Response:
        scope = guard(request, Right.READ)

        frames = await run_in_threadpool(snapshot_frames, state.pool.peer, scope, state.config.timeout)
        return StreamingResponse(frames, media_type=SNAPSHOT)

    async def apply(request: Request) -> Response:
        scope = guard(request, Right.WRITE)
        session = finishing(request)
        data = await read_body(request, limits, BATCH)
        policy = state.config.policy

        def run(db: Database) -> tuple[ApplyReport, bool]:
            report = db.apply(scope, data, policy)
            if not report.final:
                return report, False
            source, _, _ = batch_head(data)  # the apply validated the whole batch
            final = (source, report.last, report.made_with)
            clean = report.excluded.is_empty() and not report.failed
            if session is not None and clean and vouches(final, report.made_with, report.knowledge):
                db.finish(scope, SessionEnd(session, report.made_with, Knowledge.empty(), ()))
                return report, True
            state.finals.record(db, scope, final, report.knowledge)
            return report, False

        report, finished = await call(run)
        headers = {FINISHED_HEADER: session} if finished and session is not None else None
        return message(codec.APPLY_REPORT.encode(report), headers)

    async def finish(request: Request) -> Response:
        scope = guard(request, Right.WRITE)
        end = codec.SESSION_END.decode(await read_body(request, limits, MESSAGE), max_size=limits.max_body)

        def run(db: Database) -> bytes:
            # Knowledge only grows, so what justifies the merge now still
            # does when the finish transaction runs.
            vetted = state.finals.vet(db, scope, end, db.describe(scope).knowledge)
            if vetted is not end:
                log.warning("finish of session %s on scope %r: merge not justified by a final batch, dropped",
                            end.session, scope)  # fmt: skip
            return codec.KNOWLEDGE.encode(db.finish(scope, vetted))

        return message(await call(run))

    s = PREFIX + "/scopes/{scope}"
    return [
        Route("/health", health, methods=["GET"]),
        Route(PREFIX + "/status", all_status, methods=["GET"]),
        Route(s + "/status", status, methods=["GET"]),
        Route(s + "/describe", describe, methods=["GET"]),
        Route(s + "/schemas", schemas, methods=["GET"]),
        Route(s + "/conflicts", conflicts, methods=["GET"]),
        Route(s + "/changes", changes, methods=["POST"]),
        Route(s + "/batches", batches, methods=["POST"]),
        Route(s + "/snapshot", snapshot, methods=["GET"]),
        Route(s + "/apply", apply, methods=["POST"]),
        Route(s + "/finish", finish, methods=["POST"]),
    ]


def message(data: bytes, headers: dict[str, str] | None = None) -> Response:
    return Response(data, media_type=MESSAGE, headers=headers)


def finishing(request: Request) -> str | None:
    """The session a final ``apply`` asks to end with it, if any. Raises
    :class:`Refusal` (400) for a malformed one, before anything is read."""
    session = request.headers.get(FINISH_HEADER)
    if session is not None and not _SESSION.fullmatch(session):
        raise Refusal(400, ProtocolError(f"the {FINISH_HEADER} header must be a session id of 32 lowercase hex digits"))
    return session


def open_pass(state: State, scope: str, r: codec.ChangesRequest) -> Iterator[bytes]:
    """The frames of one pass, its first batch already read. Each batch is
    read on a connection lent for that read alone (the pass as
    :func:`~peersync._engine.peer.stream_of` makes it), so a client that takes
    its time applying a batch holds no connection of the server meanwhile."""

    def one(after: int) -> bytes:
        with state.pool.peer() as db:
            return db.changes(scope, r.known, after, r.upto, max_rows=r.max_rows, max_bytes=r.max_bytes)

    first = one(r.after)

    def batches() -> Iterator[bytes]:
        data = first
        while True:
            yield data
            last, final = batch_end(data)
            if final or last >= r.upto:
                return
            data = one(last)

    return codec.encode_batch_stream(batches())
