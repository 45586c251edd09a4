"""A JSON document that is a bare number, in a SQLite column declared
``JSON``: that declaration has NUMERIC affinity, so SQLite stores '2.50' as
the REAL 2.5 (and the '5' a server sends as the integer 5). A JSON document
travels as its text, so the SQLite peer sends such a value as its text again:
a server's ``json`` column receives the document SQLite holds, and a
server's own numeric documents come back from SQLite as documents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import peersync

from .conftest import by_kind, provisioned, run, sync


def test_a_bare_number_json_document_reaches_a_server_json_column(server: Any, tmp_path: Path) -> None:
    url, path = provisioned(
        server,
        tmp_path,
        "doc",
        ["CREATE TABLE doc (id INTEGER PRIMARY KEY, body JSON)"],
        pg=["CREATE TABLE doc (id INTEGER PRIMARY KEY, body JSON)"],
        mysql=["CREATE TABLE doc (id INTEGER PRIMARY KEY, body JSON)"],
    )
    run(path, "INSERT INTO doc VALUES (1, '2.50'), (2, '{\"a\": 1}'), (3, '7'), (4, '\"text\"')")
    assert [type(v) for (v,) in run(path, "SELECT body FROM doc ORDER BY id")] == [float, str, int, str]
    r = sync(path, url, direction="push")
    assert (r.applied, r.errors) == (4, 0), r
    text = by_kind(server, "SELECT body::text FROM doc ORDER BY id", "SELECT body FROM doc ORDER BY id")
    assert run(url, text) == [("2.5",), ('{"a": 1}',), ("7",), ('"text"',)]


def test_a_servers_numeric_documents_go_through_sqlite_and_back(server: Any, tmp_path: Path) -> None:
    """A server -> SQLite -> a second server of the same kind: every document
    arrives (SQLite holds 5 and 2.5 as numbers; they travel on as documents)."""
    ddl = {"pg": ["CREATE TABLE doc (id INTEGER PRIMARY KEY, body JSON)"]}
    ddl["mysql"] = ddl["pg"]
    url, path = provisioned(server, tmp_path, "doc", ["CREATE TABLE doc (id INTEGER PRIMARY KEY, body JSON)"], **ddl)
    other = server(**ddl)
    with peersync.connect(other) as db:
        db.provision("s", ["doc"])
    run(url, "INSERT INTO doc VALUES (1, '5'), (2, '2.5'), (3, '[1, 2]')")
    assert sync(url, path, direction="push").applied == 3
    r = sync(path, other, direction="push")
    assert (r.applied, r.errors) == (3, 0), r
    text = by_kind(server, "SELECT body::text FROM doc ORDER BY id", "SELECT body FROM doc ORDER BY id")
    assert run(other, text) == [("5",), ("2.5",), ("[1, 2]",)]
    assert sync(other, url).sent_a_to_b + sync(other, url).sent_b_to_a == 0
