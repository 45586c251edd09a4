"""TEXT that is not valid UTF-8 (``RawText``): on the wire, and bound as TEXT."""

from __future__ import annotations

import sqlite3

import msgpack
import pytest

from peersync import ProtocolError, RawText
from peersync._adapters.sqlite.text import Connection, bind, decode_text, read_text
from peersync._engine.wire import EXT_RAW_TEXT, decode_batch, encode_batch

from .test_wire import SCHEMAS, SRC, T0, batch


def test_raw_text_crosses_the_wire_exactly() -> None:
    b = batch({"doc": [(1, False, (SRC, 1), (SRC, 1), T0, (RawText(b"o\xff"), 1, RawText(b"\xc3"), b"\xc3"))]})
    ((_, _, _, _, _, values),) = decode_batch(encode_batch(b, SCHEMAS), SCHEMAS).changes["doc"]
    assert values == (RawText(b"o\xff"), 1, RawText(b"\xc3"), b"\xc3")
    assert type(values[3]) is bytes


def test_an_unknown_msgpack_extension_is_refused() -> None:
    b = batch({"doc": [(1, False, (SRC, 1), (SRC, 1), T0, ("o", 1, RawText(b"\xff"), None))]})
    data = encode_batch(b, SCHEMAS)
    marker = msgpack.packb(msgpack.ExtType(EXT_RAW_TEXT, b"\xff"))
    assert marker in data
    forged = data.replace(marker, msgpack.packb(msgpack.ExtType(EXT_RAW_TEXT + 1, b"\xff")))
    with pytest.raises(ProtocolError, match="extension"):
        decode_batch(forged, SCHEMAS)


def test_decode_text_keeps_what_is_not_utf8() -> None:
    assert decode_text("ü".encode()) == "ü"
    assert decode_text(b"\xed\xa0\x80") == RawText(b"\xed\xa0\x80")  # an encoded surrogate is not UTF-8


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT ?, ?", "SELECT ?, CAST(? AS TEXT)"),
        ("SELECT '?', \"a?\", [b?], `c?`, ? -- ?\n, /* ? */ ?", None),
        ("SELECT 'it''s ?', ?, ?", "SELECT 'it''s ?', ?, CAST(? AS TEXT)"),
        ("SELECT ?1, ?2", "SELECT ?1, ?2"),  # numbered: left to sqlite3
        ("SELECT :a, ?", "SELECT :a, ?"),
    ],
)
def test_bind_casts_raw_text_placeholders_only(sql: str, expected: str | None) -> None:
    out, params = bind(sql, [1, RawText(b"\xff")])
    if expected is None:  # the two real placeholders are the last ones
        assert out == "SELECT '?', \"a?\", [b?], `c?`, ? -- ?\n, /* ? */ CAST(? AS TEXT)"
    else:
        assert out == expected
    if out != sql:
        assert params == [1, b"\xff"]


def test_a_connection_binds_and_reads_raw_text() -> None:
    conn = sqlite3.connect(":memory:", factory=Connection)
    conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v)")
    conn.execute("INSERT INTO t VALUES (?, ?)", (RawText(b"k\x80"), RawText(b"\xffA")))
    assert conn.execute("SELECT typeof(v), hex(v) FROM t WHERE k = ?", (RawText(b"k\x80"),)).fetchone() == (
        "text",
        "FF41",
    )
    assert conn.execute("SELECT k, v FROM t").fetchone() == (RawText(b"k\x80"), RawText(b"\xffA"))
    assert read_text(conn, lambda: conn.execute("SELECT v FROM t").fetchall()) == [(RawText(b"\xffA"),)]
    assert conn.text_factory is decode_text  # restored after the fast read fell back
