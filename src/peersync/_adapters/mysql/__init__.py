"""The MariaDB/MySQL adapter: a server database, tracked by triggers, with
ticks sealed after commit (see ``schema.py``).

Registers the ``mysql`` and ``mariadb`` schemes:
``mysql://user:password@host:port/database``. Needs PyMySQL
(``pip install 'peersync[mysql]'``).
"""

from __future__ import annotations

from typing import Any

from peersync._engine.errors import InvalidURL
from peersync._engine.registry import register

from .conn import parse_url
from .peer import MySQLPeer

__all__ = ["MySQLPeer", "open_mysql"]


def open_mysql(url: str, *, timeout: float = 5.0, **options: Any) -> MySQLPeer:
    """Open the database a ``mysql://`` or ``mariadb://`` URL names."""
    if options:
        raise InvalidURL(f"MySQL databases take no option {', '.join(sorted(options))}")
    return MySQLPeer(parse_url(url), timeout=timeout)


register("mysql", open_mysql)
register("mariadb", open_mysql)
