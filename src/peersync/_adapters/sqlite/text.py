"""TEXT values that are not valid UTF-8, read and written through ``sqlite3``.

SQLite keeps whatever bytes a TEXT value was given, valid UTF-8 or not.
``sqlite3`` refuses to decode such a value when reading and cannot bind one
when writing (a ``str`` is always valid UTF-8, ``bytes`` bind as a BLOB).
peersync carries it as :class:`~peersync.RawText`:

- reading: a connection's text factory falls back to ``RawText``; a bulk
  read keeps ``sqlite3``'s fast decoding and is read again that way only if
  it meets such a value (:func:`read_text`);
- writing: a statement whose parameters hold ``RawText`` binds its bytes as
  ``CAST(? AS TEXT)``, which keeps the bytes and makes them TEXT
  (:class:`Connection`); a set of rows loaded with ``executemany`` is loaded
  as bytes and cast back (:func:`load_rows`).

This is exact in a UTF-8 database (SQLite's default encoding).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from peersync._engine.model import RawText

T = TypeVar("T")
_UNDECODABLE = "Could not decode to UTF-8"  # sqlite3's message, raised before SQLite is involved


def decode_text(data: bytes) -> str | RawText:
    """The text factory: ``str`` for valid UTF-8, ``RawText`` otherwise."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return RawText(data)


def _placeholders(sql: str) -> list[int] | None:
    """Offsets of the plain ``?`` parameters of ``sql`` (outside quotes and
    comments); None if it uses numbered or named ones."""
    out: list[int] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"`":
            j = i + 1
            while True:
                j = sql.find(c, j)
                if j < 0:
                    return out
                if sql.startswith(c + c, j):
                    j += 2
                    continue
                break
            i = j + 1
        elif c == "[":
            j = sql.find("]", i + 1)
            i = n if j < 0 else j + 1
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif c == "?":
            if sql[i + 1 : i + 2].isdigit():
                return None
            out.append(i)
            i += 1
        elif c in ":@$" and (sql[i + 1 : i + 2].isalpha() or sql[i + 1 : i + 2] == "_"):
            return None
        else:
            i += 1
    return out


def bind(sql: str, params: Sequence[Any]) -> tuple[str, list[Any]]:
    """``sql`` and ``params`` with each ``RawText`` bound as ``CAST(? AS TEXT)``."""
    where = _placeholders(sql)
    if where is None or len(where) != len(params):
        return sql, list(params)  # let sqlite3 refuse it with its own message
    out = list(params)
    for i in reversed(range(len(out))):
        if type(out[i]) is RawText:
            at = where[i]
            sql = f"{sql[:at]}CAST(? AS TEXT){sql[at + 1 :]}"
            out[i] = out[i].data
    return sql, out


class Connection(sqlite3.Connection):
    """A ``sqlite3`` connection that reads and binds :class:`RawText`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.text_factory = decode_text

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        if isinstance(parameters, (list, tuple)) and any(type(p) is RawText for p in parameters):
            sql, parameters = bind(sql, parameters)
        return super().execute(sql, parameters)


def read_text(conn: sqlite3.Connection, read: Callable[[], T]) -> T:
    """Run ``read`` (read-only queries) decoding text as fast as ``sqlite3``
    can; run it again with :func:`decode_text` only if a value is not UTF-8."""
    factory = conn.text_factory
    conn.text_factory = str
    try:
        return read()
    except sqlite3.OperationalError as exc:
        if not str(exc).startswith(_UNDECODABLE):
            raise
    finally:
        conn.text_factory = factory
    conn.text_factory = decode_text
    try:
        return read()
    finally:
        conn.text_factory = factory


def load_rows(conn: sqlite3.Connection, table: str, insert: str, rows: Sequence[Any], first: int) -> bool:
    """Load ``rows`` (values from position ``first`` on go to columns ``c0,
    c1, ...``) into the empty ``table`` whose ``seq`` numbers them from 1,
    binding ``RawText`` values as bytes and casting them back to TEXT.
    False if no row holds one (the caller's bind error has another cause)."""
    casts: dict[int, list[tuple[int]]] = {}
    loaded = []
    for seq, row in enumerate(rows, start=1):
        if isinstance(row, list) and any(type(v) is RawText for v in row[first:]):
            row = row[:first] + [v.data if type(v) is RawText else v for v in row[first:]]
            for j, v in enumerate(rows[seq - 1][first:]):
                if type(v) is RawText:
                    casts.setdefault(j, []).append((seq,))
        loaded.append(row)
    if not casts:
        return False
    conn.execute(f"DELETE FROM {table}")
    conn.executemany(insert, loaded)
    for j, seqs in casts.items():
        conn.executemany(f"UPDATE {table} SET c{j} = CAST(c{j} AS TEXT) WHERE seq = ?", seqs)
    return True
