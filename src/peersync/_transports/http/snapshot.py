"""A scope's snapshot over HTTP, for ``peersync clone http://... DST``
(docs/protocol.md, "Snapshot").

The server copies its SQLite database in one read transaction into a hidden
file beside it, keeps only the scope (:func:`scope_snapshot`), or writes a
PostgreSQL or MariaDB scope as the same SQLite file from one snapshot
transaction (:func:`write_snapshot`), and streams
the file in frames; the client writes them to a temporary file beside its new
database, which :func:`build_clone` makes a new replica and links into place
only when the stream ended whole. Memory stays one chunk on both ends::

    ["snapshot", 1, size]   bin(chunk) ...   ["end", sha256]

A stream cut short (no end frame) is :class:`~peersync.TransportError`; one
whose size or digest does not match is :class:`~peersync.ProtocolError`.
Either way the client's temporary file is removed and no database is made.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from typing import BinaryIO

import msgpack

from peersync._adapters.sql.snapshot import SnapshotSource
from peersync._adapters.sqlite.clone import scope_snapshot
from peersync._adapters.sqlite.from_server import write_snapshot
from peersync._adapters.sqlite.peer import SQLitePeer
from peersync._engine.errors import ConfigurationError, ProtocolError, StorageError, TransportError

MAGIC = "snapshot"
FORMAT = 1
CHUNK = 1024 * 1024


def open_snapshot(db: object, scope: str, timeout: float) -> Iterator[bytes]:
    """The frames of ``scope``'s snapshot of the database ``db`` serves. The
    snapshot file is made before the response starts (so its errors get
    their status code) and unlinked at once: the open file is all that is
    left, and it goes when the stream ends or is dropped.

    A SQLite database is copied beside itself (:func:`scope_snapshot`); a
    PostgreSQL or MariaDB one is written as the same SQLite file, in the
    system's temporary folder, from one snapshot transaction
    (:func:`~peersync._adapters.sqlite.from_server.write_snapshot`)."""
    if isinstance(db, SQLitePeer):
        path = db.path
        prefix, folder = f".{os.path.basename(path)}.", os.path.dirname(os.path.abspath(path))
    elif isinstance(db, SnapshotSource):
        prefix, folder = "peersync-", None
    else:
        raise ConfigurationError("this server's database gives no snapshot: sync into a new database instead")
    try:
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".peersync-snapshot", dir=folder)
    except OSError as exc:
        raise StorageError(f"cannot make a snapshot: {exc}") from exc
    os.close(fd)
    try:
        if isinstance(db, SQLitePeer):
            scope_snapshot(db.path, tmp, scope, timeout=timeout)
        else:
            with db.snapshot_of(scope) as snap:
                write_snapshot(tmp, snap)
        f = open(tmp, "rb")  # noqa: SIM115 (closed by the frames, or on error below)
    finally:
        for suffix in ("", "-journal", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp + suffix)
    return _frames(f)


def _frames(f: BinaryIO) -> Iterator[bytes]:
    with f:
        size = os.fstat(f.fileno()).st_size
        yield msgpack.packb([MAGIC, FORMAT, size])
        digest = hashlib.sha256()
        p = msgpack.Packer(use_bin_type=True)
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            yield p.pack(chunk)
        yield msgpack.packb(["end", digest.digest()], use_bin_type=True)


def read_snapshot(url: str, chunks: Iterable[bytes], out: BinaryIO) -> int:
    """Write the snapshot carried by ``chunks`` (the response body) into
    ``out``; return its size. Raises :class:`~peersync.TransportError` for a
    stream cut short, :class:`~peersync.ProtocolError` for one that is not a
    snapshot or does not match its size and digest."""
    u = msgpack.Unpacker(raw=False, max_buffer_size=4 * CHUNK)
    digest = hashlib.sha256()
    size: int | None = None
    written = 0
    try:
        for data in chunks:
            u.feed(data)
            for frame in u:
                if size is None:
                    if not (isinstance(frame, list) and len(frame) == 3 and frame[:2] == [MAGIC, FORMAT]):
                        raise ProtocolError(f"{url} did not answer with a snapshot of format {FORMAT}")
                    if type(frame[2]) is not int or frame[2] < 0:
                        raise ProtocolError(f"{url} sent a snapshot of a bad size")
                    size = frame[2]
                elif isinstance(frame, bytes):
                    written += len(frame)
                    if written > size:
                        raise ProtocolError(f"{url} sent more than the {size} bytes of its snapshot")
                    digest.update(frame)
                    out.write(frame)
                elif isinstance(frame, list) and len(frame) == 2 and frame[0] == "end":
                    if written != size or frame[1] != digest.digest():
                        raise ProtocolError(f"{url} sent a snapshot that does not match its size or digest")
                    return written
                else:
                    raise ProtocolError(f"{url} sent a malformed snapshot frame")
    except (msgpack.UnpackException, ValueError) as exc:
        raise ProtocolError(f"{url} sent a malformed snapshot: {exc}") from exc
    raise TransportError(f"{url}: the snapshot stream was cut after {written} bytes")
