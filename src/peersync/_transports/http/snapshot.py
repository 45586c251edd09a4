"""A scope's snapshot over HTTP, for ``peersync clone http://... DST``
(docs/protocol.md, "Snapshot").

The server copies its SQLite database in one read transaction into a hidden
file beside it, keeps only the scope (:func:`scope_snapshot`), or writes a
PostgreSQL or MariaDB scope as the same SQLite file from one snapshot
transaction (:func:`write_snapshot`), and streams
the file in frames; the client writes them to a temporary file beside its new
database, which :func:`build_clone` makes a new replica and links into place
only when the stream ended whole. Memory stays one chunk on both ends::

    ["wait"] ...   ["snapshot", 1, size]   bin(chunk) ...   ["end", sha256]

A large scope of a server database takes minutes to write: the server waits
:data:`PATIENCE` seconds for the file (an error by then still gets its status
code), then answers and sends a ``wait`` frame every :data:`KEEPALIVE`
seconds until the file is whole, so no client or proxy times the response
out meanwhile; an error after that is an ``error`` frame (the error message's
own form) in place of the header.

A stream cut short (no end frame) is :class:`~peersync.TransportError`; one
whose size or digest does not match is :class:`~peersync.ProtocolError`.
Either way the client's temporary file is removed and no database is made.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import BinaryIO

import msgpack

from peersync._adapters.sql.snapshot import SnapshotSource
from peersync._adapters.sqlite.clone import scope_snapshot
from peersync._adapters.sqlite.from_server import write_snapshot
from peersync._adapters.sqlite.peer import SQLitePeer
from peersync._engine import codec
from peersync._engine.errors import ConfigurationError, ProtocolError, StorageError, SyncError, TransportError

MAGIC = "snapshot"
FORMAT = 1
CHUNK = 1024 * 1024
WAIT = "wait"
PATIENCE = 2.0
"""Seconds the server waits for the snapshot file before it starts answering."""
KEEPALIVE = 5.0
"""Seconds between two ``wait`` frames while the file is still being written."""

log = logging.getLogger(__name__)


def snapshot_frames(lend: Callable[[], AbstractContextManager[object]], scope: str, timeout: float) -> Iterator[bytes]:
    """The frames of ``scope``'s snapshot of the database a connection lent by
    ``lend`` serves (:func:`open_snapshot` on it, in a thread of its own).

    Waits up to :data:`PATIENCE` seconds for the file: if it is whole by then, or
    its making failed, this returns the frames or raises the error, so the
    response gets that error's status code. Otherwise the frames begin with a
    ``wait`` frame every :data:`KEEPALIVE` seconds until the file is whole,
    and an error met after the response began is sent as an ``error`` frame.
    A client that leaves meanwhile costs nothing more than the file being
    made: it is closed (so removed) as soon as it exists."""
    done: concurrent.futures.Future[Iterator[bytes]] = concurrent.futures.Future()

    def make() -> None:
        try:
            with lend() as db:
                done.set_result(open_snapshot(db, scope, timeout))
        except BaseException as exc:  # handed to the waiting response
            done.set_exception(exc)

    threading.Thread(target=make, name=f"peersync-snapshot-{scope}", daemon=True).start()
    try:
        return done.result(timeout=PATIENCE)
    except concurrent.futures.TimeoutError:
        return _waiting(done)


def _waiting(done: concurrent.futures.Future[Iterator[bytes]]) -> Iterator[bytes]:
    frames: Iterator[bytes] | None = None
    try:
        while frames is None:
            try:
                frames = done.result(timeout=KEEPALIVE)
            except concurrent.futures.TimeoutError:
                yield msgpack.packb([WAIT])
            except SyncError as exc:
                yield codec.ERROR.encode(exc)
                return
        yield from frames
    finally:
        if frames is None:
            done.add_done_callback(_dropped)


def _dropped(done: concurrent.futures.Future[Iterator[bytes]]) -> None:
    """The client left before the file was whole: the frames are dropped
    unread (their file, already unlinked, closes with them)."""
    if done.exception() is not None:
        log.info("a snapshot no client waits for any more failed: %s", done.exception())


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
                if size is None and frame == [WAIT]:
                    continue  # the server is still writing the file
                if size is None and isinstance(frame, list) and frame[:1] == ["error"]:
                    raise codec.ERROR.decode(msgpack.packb(frame, use_bin_type=True))
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
