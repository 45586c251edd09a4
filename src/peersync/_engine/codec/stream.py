"""A pass of :meth:`Peer.batches` as one stream: ``["batch-stream", 1]``,
one bin per batch, then nil, so a stream cut short is told apart from one
that ended."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import msgpack

from ..errors import ProtocolError
from .fields import DEFAULT_MAX_SIZE, FORMAT, Map, _type_name

_STREAM = "batch-stream"
_END = b"\xc0"  # msgpack nil
_FEED = 64 * 1024  # bytes fed to the unpacker at a time, so its buffer stays near one batch


def encode_batch_stream(batches: Iterable[bytes]) -> Iterator[bytes]:
    """The frames of a stream of encoded batches, lazily (no batch is copied)."""
    yield msgpack.packb([_STREAM, FORMAT])
    for data in batches:
        n = len(data)
        if n < 2**8:
            yield b"\xc4" + n.to_bytes(1, "big")
        elif n < 2**16:
            yield b"\xc5" + n.to_bytes(2, "big")
        elif n < 2**32:
            yield b"\xc6" + n.to_bytes(4, "big")
        else:
            raise ProtocolError(f"cannot stream a batch of {n} bytes")
        yield data
    yield _END


def decode_batch_stream(chunks: Iterable[bytes], *, max_size: int = DEFAULT_MAX_SIZE) -> Iterator[bytes]:
    """The batches of a stream, each as soon as its last byte arrives.

    ``chunks`` may split the stream anywhere. Each batch is at most
    ``max_size`` bytes, and about that much is buffered at a time. Raises
    :class:`~peersync.ProtocolError` (after yielding the batches before it)
    for a bad header, an item that is not bin, an oversized batch, bytes after
    the end mark, or a stream that stops before its end mark. The batches
    themselves are not decoded here.
    """
    u = msgpack.Unpacker(raw=False, strict_map_key=False, object_pairs_hook=Map, max_buffer_size=max_size + 2 * _FEED)
    state = "head"  # then "items", then "ended"
    fed = 0
    for chunk in chunks:
        if type(chunk) is not bytes:
            raise ProtocolError(f"malformed batch stream: a chunk is {type(chunk).__name__}, not bytes")
        for i in range(0, len(chunk), _FEED):
            if state == "ended":
                raise ProtocolError("malformed batch stream: bytes after its end mark")
            try:
                part = chunk[i : i + _FEED]
                u.feed(part)
                fed += len(part)
                items = _drain(u)
            except msgpack.BufferFull:
                raise ProtocolError(f"malformed batch stream: a batch exceeds the limit of {max_size} bytes") from None
            except Exception as exc:  # msgpack raises several unrelated types
                raise ProtocolError(f"malformed batch stream: not msgpack ({type(exc).__name__}: {exc})") from None
            for item, end in items:
                if state == "head":
                    if type(item) is not list or item[:1] != [_STREAM] or len(item) != 2:
                        raise ProtocolError("malformed batch stream: not a batch stream")
                    if type(item[1]) is not int or item[1] != FORMAT:
                        raise ProtocolError(f"malformed batch stream: unsupported format {item[1]!r}")
                    state = "items"
                elif item is None:
                    state = "ended"
                    if end != fed:
                        raise ProtocolError("malformed batch stream: bytes after its end mark")
                elif type(item) is not bytes:
                    raise ProtocolError(f"malformed batch stream: an item is {_type_name(item)}, not a batch")
                elif len(item) > max_size:
                    raise ProtocolError(f"malformed batch stream: a batch exceeds the limit of {max_size} bytes")
                else:
                    yield item
    if state != "ended":
        raise ProtocolError("malformed batch stream: it stops before its end mark")


def _drain(u: Any) -> list[tuple[Any, int]]:
    """The whole objects fed so far, each with the stream offset where it ends."""
    out: list[tuple[Any, int]] = []
    while True:
        try:
            item = u.unpack()
        except msgpack.OutOfData:
            return out
        out.append((item, u.tell()))
