"""Real ``peersync serve`` processes on free loopback ports.

``servers`` (one per test module) starts servers on demand and stops them
all when the module ends; each server is a subprocess of this checkout's
code, reached through HTTP like any user's.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

import peersync

SRC = Path(peersync.__file__).resolve().parent.parent
SCHEMA = "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER);"


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "peersync", *args]


def env() -> dict[str, str]:
    out = dict(os.environ)
    out["PYTHONPATH"] = os.pathsep.join([str(SRC), out.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    out.pop("PEERSYNC_TOKEN", None)
    return out


def run(*args: str, check: bool = True, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``peersync ARGS`` as a user runs it."""
    proc = subprocess.run(cli(*args), capture_output=True, text=True, env=env() | (extra_env or {}), timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"peersync {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """One ``peersync serve DB ARGS`` process on ``port``."""

    def __init__(self, db: Path, *args: str, ca: str | None = None) -> None:
        self.db, self.args, self.ca = db, args, ca
        self.port = free_port()
        self.url = f"{'https' if '--cert' in args else 'http'}://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> Server:
        self.proc = subprocess.Popen(
            cli("serve", str(self.db), "--port", str(self.port), *self.args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env(),
        )
        deadline = time.monotonic() + 60  # a loaded machine starts --workers slowly
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited {self.proc.returncode}: {self.proc.communicate()[1]}")
            try:
                verify = ssl.create_default_context(cafile=self.ca) if self.ca else True
                if httpx.get(self.url + "/health", timeout=1, verify=verify).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise AssertionError("serve did not come up in 60 s")

    def signal(self, sig: int) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=30)
        self.proc.communicate()
        self.proc = None
        return rc

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.signal(signal.SIGTERM)


def make(path: Path, schema: str = SCHEMA, scope: str = "s", tables: tuple[str, ...] = ("item",)) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(schema)
    conn.close()
    with peersync.connect(path) as db:
        db.provision(scope, list(tables))
    return path


def dump(path: Path) -> list[tuple[object, ...]]:
    """Every row of every table, peersync's own (tracking, knowledge) included."""
    conn = sqlite3.connect(path)
    out: list[tuple[object, ...]] = []
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"):
        out += [(name, *r) for r in conn.execute(f'SELECT * FROM "{name}" ORDER BY 1')]
    conn.close()
    return out


def items(path: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    out = conn.execute("SELECT * FROM item ORDER BY id").fetchall()
    conn.close()
    return out


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Server]]:
    """``servers(db, *serve_args)``: a started server; all stop with the module."""
    started: list[Server] = []

    def start(db: Path, *args: str) -> Server:
        s = Server(db, *args).start()
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("http")
