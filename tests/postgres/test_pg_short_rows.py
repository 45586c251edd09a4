"""An initial sync's short rows are checked and written a column at a time
(``postgres/short.py``), and end exactly as the row-by-row paths leave them.

Each case syncs the same SQLite rows into two PostgreSQL databases, once as
short rows through ``fresh.write_short`` and once with that path off (the
staged apply), and compares every stored value (as PostgreSQL prints it),
the tracking state and the conflict log. Values a text ``COPY`` must escape
or spell in its own way are the point: tabs, newlines, backslashes, control
characters, 4-byte characters, NULLs, infinities, NaN, -0.0, extreme
integers, bytes, booleans, decimals, JSON, enum labels. A value that does not
fit its column, and a malformed batch, must take the general path, which
refuses them as before.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import psycopg
import pytest

import peersync
from peersync._adapters.postgres import fresh, short

from .helpers import provision, sync

PG = (
    "CREATE TYPE hue AS ENUM ('red', 'green');"
    " CREATE TABLE w (id bigint PRIMARY KEY, small smallint, mid integer, dbl float8, dec numeric(20, 6),"
    " txt text, vc varchar(20), bin bytea, flag boolean, doc json, color hue, note text)"
)
LITE = (
    "CREATE TABLE w (id INTEGER PRIMARY KEY, small SMALLINT, mid INTEGER, dbl REAL, dec DECIMAL(20, 6),"
    " txt TEXT, vc VARCHAR(20), bin BLOB, flag BOOLEAN, doc JSON, color TEXT, note TEXT)"
)
TEXTS = [
    "tab\there", "new\nline", "back\\slash\\", "cr\rlf\r\n", "\b\f\v", "\\N", "\\.", "", " ", "\U0001f600 \u00e9",
    "'quoted' \"dq\"", "end\\",
]  # fmt: skip
# Backslashes alone in a column (txt): nothing else there needs escaping.
BACKSLASHED = ["\\N", "\\.", "a\\b", "end\\", "\\\\", "plain"]
FLOATS = [math.inf, -math.inf, math.nan, -0.0, 0.0, 1.7976931348623157e308, 5e-324, 0.1, -2.5e-300, 1e16]
INTS = [-32768, 32767, 0, -1, 1, 255]
BIG = [-(2**31), 2**31 - 1, 0, 7]
BYTES = [b"", b"\x00", b"\\", b"\t\n\r", bytes(range(256))]
DOCS = ['{"a": [1, 2.5], "b": "t\\tab"}', "[]", "null", '"s"']


def _row(i: int) -> tuple[Any, ...]:
    def pick(xs: list[Any], k: int = 0) -> Any:
        v = xs[(i + k) % len(xs)]
        return None if (i + k) % 11 == 0 else v

    dec = None if i % 7 == 0 else i + 0.25 if i % 2 else -i * 1000
    return (
        i, pick(INTS), pick(BIG, 1), pick(FLOATS, 2), dec, pick(BACKSLASHED, 3), pick(TEXTS, 4), pick(BYTES, 5),
        pick([0, 1], 6), pick(DOCS, 7), pick(["red", "green"], 8), pick(TEXTS, 9),
    )  # fmt: skip


ROWS = [_row(i) for i in range(1, 241)]


def _source(path: Path, rows: list[tuple[Any, ...]]) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(LITE)
    with conn:
        conn.executemany(f"INSERT INTO w VALUES ({', '.join('?' * 12)})", rows)
    conn.close()
    provision(path, ["w"])
    return path


def _state(url: str) -> dict[str, Any]:
    """Every value as PostgreSQL prints it, the tracking rows (without the
    local tick and time) and the conflict log."""
    with psycopg.connect(url) as conn:
        values = conn.execute("SELECT w::text FROM w ORDER BY id").fetchall()
        (tid,) = conn.execute("SELECT id FROM _peersync._peersync_tracked").fetchone()  # type: ignore[misc]
        tracking = conn.execute(
            f"SELECT k0, r.replica_id, utick, crep, ctick, ctime, del, scope, mw IS NULL"
            f" FROM _peersync._peersync_t_{tid} AS t JOIN _peersync._peersync_replicas AS r ON r.idx = t.urep"
            " ORDER BY k0"
        ).fetchall()
    with peersync.connect(url) as db:
        log = sorted((c.key, c.type.value, c.detail) for c in db.conflicts("s"))
    return {"values": values, "tracking": tracking, "conflicts": log}


def _both(
    tmp: Path, make_pg: Callable[..., str], rows: list[tuple[Any, ...]], monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, Any], dict[str, Any], list[bool]]:
    """The state after one initial sync with the short path, and without it."""
    src = _source(tmp / "src.db", rows)
    taken: list[bool] = []
    real = fresh.write_short

    def spy(*args: Any) -> bool:
        taken.append(real(*args))
        return taken[-1]

    states = []
    for use_short in (True, False):
        url = make_pg(PG)
        provision(url, ["w"])
        with monkeypatch.context() as m:
            m.setattr(fresh, "write_short", spy)
            if not use_short:
                m.setattr(fresh, "MIN_ROWS", 10**9)
            sync(src, url, direction="push", batch_size=1000)
        states.append(_state(url))
        # The next session sends nothing back but what failed here.
        assert sync(url, src, direction="push").sent_a_to_b == 0
    return states[0], states[1], taken


def test_short_rows_store_every_value_as_the_staged_apply_does(
    make_pg: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_short, staged, taken = _both(tmp_path, make_pg, ROWS, monkeypatch)
    assert taken == [True]
    assert with_short == staged
    assert len(with_short["values"]) == len(ROWS) and not with_short["conflicts"]


@pytest.mark.parametrize(
    "column, value",
    [("small", 40000), ("mid", 2**40), ("vc", "x" * 21), ("txt", "nul\x00"), ("dec", "1e30"), ("dbl", "abc")],
)
def test_a_value_that_does_not_fit_takes_the_general_path(
    column: str, value: Any, make_pg: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pos = ["id", "small", "mid", "dbl", "dec", "txt", "vc", "bin", "flag", "doc", "color", "note"].index(column)
    rows = [r if r[0] != 150 else (*r[:pos], value, *r[pos + 1 :]) for r in ROWS]
    with_short, staged, taken = _both(tmp_path, make_pg, rows, monkeypatch)
    assert taken == []  # not offered: the general path refuses that one row
    assert with_short == staged
    assert len(with_short["values"]) == len(ROWS) - 1
    assert not any(v.startswith("(150,") for (v,) in with_short["values"])


def test_short_rows_release_what_an_earlier_failure_kept_pending(
    make_pg: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row refused here stays pending until a batch writes its key; when
    that batch is all short rows written by COPY, the pending change goes too."""
    rows = [r if r[0] != 150 else (*r[:6], "x" * 21, *r[7:]) for r in ROWS]
    src = _source(tmp_path / "src.db", rows)
    url = make_pg(PG)
    provision(url, ["w"])
    sync(src, url, direction="push", batch_size=1000)
    with peersync.connect(url) as db:
        assert db.status("s")[0].pending == 1
    conn = sqlite3.connect(src)
    with conn:  # row 150 made again (a new incarnation: a short row), and new rows
        conn.execute("DELETE FROM w WHERE id = 150")
        conn.executemany(f"INSERT INTO w VALUES ({', '.join('?' * 12)})", [_row(150), *map(_row, range(300, 500))])
    conn.close()
    taken: list[bool] = []
    real = fresh.write_short

    def spy(*args: Any) -> bool:
        taken.append(real(*args))
        return taken[-1]

    monkeypatch.setattr(fresh, "write_short", spy)
    with peersync.connect(src) as a, peersync.connect(url) as b:
        # The apply alone, no session end (which forgets pending changes the source's knowledge beats).
        data = a.changes("s", b.describe("s").knowledge, 0, a.describe("s").tick, max_rows=1000, max_bytes=1 << 24)
        assert b.apply("s", data, peersync.Policy.LAST_WRITER_WINS).applied == 201
        assert taken == [True]
        assert b.status("s")[0].pending == 0
    assert len(_state(url)["values"]) == len(ROWS) + 200


def _rewrite(data: bytes, change: Callable[[list[Any]], None]) -> bytes:
    """The batch with ``change`` made to its (only) table's rows."""
    env = msgpack.unpackb(data, raw=False)
    change(env[10][0][2])
    return msgpack.packb(env, use_bin_type=True)  # type: ignore[no-any-return]


BAD: dict[str, Callable[[list[Any]], None]] = {
    "ticks out of order": lambda rows: rows.insert(0, rows.pop(5)),
    "a tick twice": lambda rows: rows.__setitem__(1, [rows[0][0], *rows[1][1:]]),
    "a tick beyond the batch": lambda rows: rows[-1].__setitem__(0, rows[-1][0] + 10**6),
    "a tick offset of 0": lambda rows: rows[0].__setitem__(0, 0),
    "a boolean value": lambda rows: rows[3].__setitem__(4, True),
    "a float change time": lambda rows: rows[3].__setitem__(1, 1.5),
    "a row one value short": lambda rows: rows[3].pop(),
    "a row that is not a list": lambda rows: rows.__setitem__(3, 7),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_malformed_short_batch_is_refused(case: str, make_pg: Callable[..., str], tmp_path: Path) -> None:
    url = make_pg(PG)
    provision(url, ["w"])
    with peersync.connect(_source(tmp_path / "src.db", ROWS)) as src, peersync.connect(url) as dst:
        data = src.changes(
            "s", dst.describe("s").knowledge, 0, src.describe("s").tick, max_rows=1000, max_bytes=1 << 24
        )
        with pytest.raises(peersync.ProtocolError):
            dst.apply("s", _rewrite(data, BAD[case]), peersync.Policy.LAST_WRITER_WINS)
        assert dst.status("s")[0].tracked_rows == 0
        # The same batch unchanged (packed again) applies in full.
        unchanged = _rewrite(data, lambda rows: None)
        assert dst.apply("s", unchanged, peersync.Policy.LAST_WRITER_WINS).applied == len(ROWS)


def test_parse_gives_none_for_what_it_does_not_take() -> None:
    """Unit level: the conservative answers that send a batch to the general path."""
    from peersync._adapters.postgres.schema import PgColumn, Tracked
    from peersync._engine.model import TableSchema
    from peersync._engine.types import ValueType, column

    cols = (
        PgColumn(column("id", ValueType.INTEGER, (), nullable=False, declared="bigint"), "int8", "int8"),
        PgColumn(column("t", ValueType.TEXT, (), nullable=True, declared="text"), "text", "text"),
    )
    schema = TableSchema("x", ("id", "t"), ("id",), ("int8", "text"), tuple(c.spec for c in cols))
    t = Tracked(schema, '"public"."x"', cols, ("bigint",), ())
    src = b"\x01" * 16
    good = [[1, 0, 1, "a\tb"], [2, 5, 2, None]]
    got = short.parse(t, src, 1, 2, 100, good)
    assert got is not None
    assert got.user_text() == "1\ta\\tb\n2\t\\N\n"
    assert got.tracking_text(["7", "8"], "\tz") == "1\t1\t100\t7\tz\n2\t2\t105\t8\tz\n"
    assert got.changes() == [
        (1, False, (src, 1), (src, 1), 100, (1, "a\tb")),
        (2, False, (src, 2), (src, 2), 105, (2, None)),
    ]
    for rows in (
        [[1, 0, None, "a"]],  # a NULL key
        [[1, 0, 2**63, "a"]],  # out of bigint's range
        [[1, 0, 1, 5]],  # an integer for a text
        [[1, 0, 1, "a"], [1, 0, 2, "b"]],  # ticks not ascending
        [[3, 0, 1, "a"]],  # beyond last
        [[1, 0, 1, "a", 9]],  # the full form's length is not short
    ):
        assert short.parse(t, src, 1, 2, 100, rows) is None, rows
