"""Fixtures for the adversarial concurrency tests: a provisioned server
database (PostgreSQL or MariaDB, each test parametrized over both) and
provisioned SQLite replicas.

The server fixtures are the ones of ``tests/postgres`` and ``tests/mysql``
(a fresh database per test, dropped afterwards; an unreachable server skips
with the reason, and fails the run under ``CI=true``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.mysql.conftest import mysql_db
from tests.postgres.conftest import make_pg, pg_admin

from .servers import SQLITE_SCHEMA, Server, new_server, sqlite_replica

__all__ = ["make_pg", "mysql_db", "pg_admin"]


@pytest.fixture(params=["pg", "mysql"])
def server(request: Any) -> Iterator[Server]:
    """A provisioned server database of scope ``s`` over table ``item``."""
    srv = new_server(request.param, request)
    yield srv
    srv.close()


@pytest.fixture
def pg_server(request: Any) -> Iterator[Server]:
    """The same on PostgreSQL only, for histories only PostgreSQL can write."""
    srv = new_server("pg", request)
    yield srv
    srv.close()


@pytest.fixture
def mysql_server(request: Any) -> Iterator[Server]:
    """The same on MariaDB only, for histories only MariaDB can write."""
    srv = new_server("mysql", request)
    yield srv
    srv.close()


@pytest.fixture
def replica(tmp_path: Path) -> Callable[[str], str]:
    """``replica(name)``: a provisioned SQLite file of scope ``s``."""

    def make(name: str) -> str:
        return sqlite_replica(tmp_path / f"{name}.db", SQLITE_SCHEMA)

    return make
