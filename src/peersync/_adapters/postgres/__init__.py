"""The PostgreSQL adapter: a database tracked by PL/pgSQL triggers, through psycopg 3.

Registers the ``postgresql`` and ``postgres`` schemes
(``postgresql://user[:password]@host[:port]/dbname[?libpq options]``).
Importing this module needs the driver (``pip install 'peersync[postgres]'``);
the registry turns its absence into a one-line error naming that extra.
"""

from __future__ import annotations

from typing import Any

import psycopg  # noqa: F401  (the driver: its absence names the extra to install)

from peersync._engine.errors import InvalidURL
from peersync._engine.registry import register

from .conn import parse_url
from .peer import PostgresPeer

__all__ = ["PostgresPeer", "open_postgres"]


def open_postgres(url: str, *, timeout: float = 10.0, **options: Any) -> PostgresPeer:
    """Open the database a ``postgresql://`` URL names (``timeout``: seconds to connect)."""
    if options:
        raise InvalidURL(f"PostgreSQL databases take no option {', '.join(sorted(options))}")
    conninfo, shown = parse_url(url)
    return PostgresPeer(conninfo, shown, timeout=timeout)


register("postgresql", open_postgres)
register("postgres", open_postgres)
