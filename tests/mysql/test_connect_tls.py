"""A connection to a MariaDB server on loopback makes no TLS context (PyMySQL
would build one, about 0.1 s, for every connect); one to another host is
still offered TLS as before."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import peersync

from .conftest import pymysql


def test_a_loopback_connection_is_plain_and_builds_no_tls_context(
    mysql_db: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import ssl

    built: list[object] = []
    create = ssl.create_default_context

    def counted(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        built.append(args or kwargs)
        return create(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", counted)
    with peersync.connect(mysql_db()) as db:
        assert db.scopes() == []
        raw = db.conn.raw  # type: ignore[attr-defined]
        assert raw.ssl is False
    assert built == []


def test_a_server_on_another_host_is_still_offered_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def refuse(**kwargs: Any) -> None:
        seen.update(kwargs)
        raise pymysql.err.OperationalError(2003, "refused")

    monkeypatch.setattr(pymysql, "connect", refuse)
    with pytest.raises(peersync.TransportError):
        peersync.connect("mysql://root@db.example.com:3306/shop")
    assert not seen.get("ssl_disabled")  # PyMySQL offers TLS, as it always did
    assert seen["host"] == "db.example.com"
