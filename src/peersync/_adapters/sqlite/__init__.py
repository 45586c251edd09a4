"""The SQLite adapter: files, tracked by triggers, applied set-based in SQL.

Registers the ``sqlite`` scheme (``sqlite:///relative/path``,
``sqlite:////absolute/path``); a plain path opens a SQLite file too.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from peersync._engine.errors import InvalidURL
from peersync._engine.registry import register

from .peer import SQLitePeer

__all__ = ["SQLitePeer", "open_sqlite", "sqlite_path"]


def sqlite_path(url: str) -> str:
    """The file path of a SQLite URL (``sqlite:///path``) or plain path."""
    if "://" not in url:
        return url
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() != "sqlite":
        raise InvalidURL(f"not a SQLite URL: {url!r}")
    if parts.netloc not in ("", "localhost"):
        raise InvalidURL(f"bad SQLite URL {url!r}: write sqlite:///relative/path or sqlite:////absolute/path")
    path = urllib.parse.unquote(parts.path)
    # sqlite:///rel/path -> "/rel/path" would be absolute; follow SQLAlchemy:
    # three slashes mean a relative path, four an absolute one.
    path = path[1:] if path.startswith("/") else path
    if not path:
        raise InvalidURL(f"bad SQLite URL {url!r}: no path")
    return path


def open_sqlite(url: str, *, timeout: float = 5.0, foreign_keys: bool = True, **options: Any) -> SQLitePeer:
    if options:
        raise InvalidURL(f"SQLite databases take no option {', '.join(sorted(options))}")
    return SQLitePeer(sqlite_path(url), timeout=timeout, foreign_keys=foreign_keys)


register("sqlite", open_sqlite)
