"""The bounds a server puts on every request, and the bounded body reader.

A body is read as it arrives, decompressed (gzip only) in bounded steps, and
refused the moment it passes the size limit or its deadline, so a huge, slow
or inflating body costs the server no more than the limit. Refusals are
:class:`Refusal` (an HTTP status, an error code and a one-line reason).
"""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass

from starlette.requests import Request

from peersync._engine.errors import ProtocolError, SyncError


@dataclass(frozen=True)
class Limits:
    """What one request may cost. Defaults are docs/protocol.md's."""

    max_body: int = 64 * 1024 * 1024  # bytes, after decompression
    body_timeout: float = 60.0  # seconds for the whole body to arrive
    max_rows: int = 100_000  # per batch a client may ask for
    max_bytes: int = 16 * 1024 * 1024  # per batch a client may ask for
    max_conflicts: int = 10_000  # per conflicts listing


class Refusal(Exception):
    """A request refused before it reached the database: ``status`` with
    ``error`` (a :class:`~peersync.SyncError` whose code and message travel)."""

    def __init__(self, status: int, error: SyncError) -> None:
        super().__init__(str(error))
        self.status = status
        self.error = error


def bad(status: int, message: str) -> Refusal:
    return Refusal(status, ProtocolError(message))


async def read_body(request: Request, limits: Limits, content_type: str) -> bytes:
    """The request's body, checked for content type and encoding, bounded in
    size (after decompression) and time. Raises :class:`Refusal`."""
    got = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if got != content_type:
        raise bad(415, f"this endpoint reads {content_type}, not {got or 'a body without a content type'}")
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        raise bad(415, f"unsupported content encoding {encoding!r} (send gzip or identity)")
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise bad(400, "malformed Content-Length")
        if encoding == "identity" and int(declared) > limits.max_body:
            raise bad(413, f"body of {declared} bytes exceeds the limit of {limits.max_body}")
    try:
        async with asyncio.timeout(limits.body_timeout):
            return await _read(request, limits.max_body, encoding == "gzip")
    except TimeoutError:
        raise bad(408, f"the body did not arrive within {limits.body_timeout:g} s") from None


async def _read(request: Request, limit: int, gzip: bool) -> bytes:
    parts: list[bytes] = []
    size = 0
    inflate = zlib.decompressobj(wbits=31) if gzip else None
    async for chunk in request.stream():
        if inflate is None:
            pieces = [chunk]
        else:
            pieces = _inflate(inflate, chunk, limit - size)
        for piece in pieces:
            size += len(piece)
            if size > limit:
                raise bad(413, f"body exceeds the limit of {limit} bytes")
            parts.append(piece)
    if inflate is not None and not inflate.eof:
        raise bad(400, "truncated gzip body")
    if inflate is not None and inflate.unused_data:
        raise bad(400, "bytes after the end of the gzip body")
    return b"".join(parts)


def _inflate(inflate: zlib._Decompress, chunk: bytes, room: int) -> list[bytes]:
    """Decompress ``chunk`` at most ``room + 1`` bytes at a time, so a bomb
    is caught after one step past the limit, not after it inflated."""
    out: list[bytes] = []
    data = chunk
    try:
        while True:
            piece = inflate.decompress(data, max(room, 0) + 1)
            out.append(piece)
            room -= len(piece)
            if room < 0 or not inflate.unconsumed_tail:
                return out
            data = inflate.unconsumed_tail
    except zlib.error as exc:
        raise bad(400, f"malformed gzip body: {exc}") from None
