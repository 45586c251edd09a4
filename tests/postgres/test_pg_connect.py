"""postgresql:// URLs: parsing, unreachable servers, a missing driver; each a one-line error."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import peersync


@pytest.mark.parametrize(
    "url",
    ["postgresql://postgres@127.0.0.1:5432/", "postgresql://postgres@127.0.0.1:99999/x", "postgres://h/a/b"],
)
def test_bad_postgres_url_is_invalid_url(url: str) -> None:
    with pytest.raises(peersync.InvalidURL) as exc:
        peersync.connect(url)
    assert "\n" not in str(exc.value)


def test_unreachable_server_is_a_one_line_transport_error() -> None:
    with pytest.raises(peersync.TransportError) as exc:
        peersync.connect("postgresql://postgres@127.0.0.1:1/nothing", timeout=2)
    assert "\n" not in str(exc.value) and "127.0.0.1" in str(exc.value)


def test_password_is_not_shown_in_errors() -> None:
    with pytest.raises(peersync.TransportError) as exc:
        peersync.connect("postgresql://postgres:s3cret@127.0.0.1:1/nothing", timeout=2)
    assert "s3cret" not in str(exc.value)


@pytest.mark.parametrize("password", ["", ":pw"])
def test_a_missing_database_is_invalid_url_naming_it_as_on_mariadb(password: str) -> None:
    # Not TransportError: a retry cannot create the database.
    with pytest.raises(peersync.InvalidURL) as exc:
        peersync.connect(f"postgresql://postgres{password}@127.0.0.1:5432/ps_no_such_database_here", timeout=2)
    assert str(exc.value) == "no such database 'ps_no_such_database_here' on the PostgreSQL server at 127.0.0.1:5432"


def test_a_url_that_does_not_parse_never_shows_its_password() -> None:
    with pytest.raises(peersync.InvalidURL) as exc:
        peersync.connect("postgresql://u:s3/cret@h/db")
    assert "s3" not in str(exc.value)


def test_both_schemes_open_a_postgres_peer(make_pg: Callable[..., str]) -> None:
    url = make_pg()
    for u in (url, "postgres" + url[len("postgresql") :]):
        with peersync.connect(u) as db:
            assert isinstance(db, peersync.Database)
            assert db.scopes() == []


def test_missing_driver_names_the_extra(tmp_path: Path) -> None:
    # A psycopg that cannot be imported, as when the extra is not installed.
    (tmp_path / "psycopg.py").write_text("raise ModuleNotFoundError('no psycopg', name='psycopg')\n")
    src = Path(__file__).resolve().parents[2] / "src"
    code = (
        "import peersync\n"
        "try:\n peersync.connect('postgresql://u@h/db')\n"
        "except peersync.ConfigurationError as e:\n print(e)\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{src}"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert "pip install 'peersync[postgres]'" in out.stdout
    assert out.stdout.count("\n") == 1
