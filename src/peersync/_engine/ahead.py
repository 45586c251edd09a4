"""Reading a pass one batch ahead, for a peer whose work is done in another process.

When the destination is remote (a served database), applying a batch is a
round trip during which this process would sit idle. :func:`read_ahead` reads
the source's next batch in a thread meanwhile, so the source's reads and the
destination's writes overlap. The same holds for a database server on either
side (a peer with ``server = True``): the server writes a batch while this
process reads the next from the source, or reads the next batch while this
process applies the last one. It changes nothing else: the batches are the
same, in the same order, and at most two wait in memory besides the one being
applied. The source's stream runs in the thread only; it is closed there.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator

_ITEM, _END, _ERROR = 0, 1, 2


def read_ahead(stream: Iterator[bytes]) -> Iterator[bytes]:
    """``stream``'s items, the next one read in a thread while the consumer
    works on the current one. Closing the result stops and joins the thread
    (after the source's stream was closed); an error in the source is raised
    to the consumer."""
    slot: queue.Queue[tuple[int, object]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(kind: int, value: object) -> bool:
        while not stop.is_set():
            try:
                slot.put((kind, value), timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in stream:
                if not put(_ITEM, item):
                    return
            put(_END, None)
        except BaseException as exc:  # handed to the consumer, raised there
            put(_ERROR, exc)
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="peersync-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = slot.get()
            if kind == _ITEM:
                assert isinstance(value, bytes)
                yield value
            elif kind == _END:
                return
            else:
                assert isinstance(value, BaseException)
                raise value
    finally:
        stop.set()
        while thread.is_alive():
            with contextlib.suppress(queue.Empty):
                slot.get(timeout=0.05)
        thread.join()
