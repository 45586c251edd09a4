"""A clone of a PostgreSQL or MariaDB replica holds every value of the
three-database type table exactly as a session into SQLite stores it
(type, value, sign of zero), and its first sync with its source sends
nothing: the clone reads values as the enumeration does (a MariaDB FLOAT
widened exactly, canonical temporal text, UUIDs, JSON, enums)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import peersync

from .test_type_round_trip import MYSQL, PG, ROWS, _lite, _lite_rows, _push, _quiet, _same, _server


@pytest.fixture
def both(make_pg: Callable[[], str], mysql_db: Callable[[], str]) -> tuple[str, str]:
    """The type table on PostgreSQL and on MariaDB, scope ``s`` provisioned."""
    return _server(make_pg, PG), _server(mysql_db, MYSQL)


def test_a_clone_of_either_server_holds_each_value_as_a_session_stores_it(
    both: tuple[str, str], tmp_path: Path
) -> None:
    a = _lite(tmp_path, "a", ROWS)
    pg, maria = both
    for src, dst in ((a, pg), (pg, maria)):
        r = _push(src, dst)
        assert (r.applied, r.errors, r.conflicts) == (len(ROWS), 0, 0), (src, dst, r)
    for name, url in (("pg", pg), ("maria", maria)):
        clone = str(tmp_path / f"{name}-clone.db")
        peersync.clone(url, clone, "s")
        pulled = _lite(tmp_path, f"{name}-pulled")
        _push(url, pulled)  # a new replica filled by a session, for comparison
        _same(_lite_rows(clone), _lite_rows(pulled))
        _same(_lite_rows(clone), _lite_rows(a))
        _quiet(clone, url)
