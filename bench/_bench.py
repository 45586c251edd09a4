"""The benchmark's shared state: databases built once per run, and the
subprocess that measures an initial sync or a baseline copy on its own."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import peersync
from _common import SCOPE, TABLE, Sizes, changed_values, generate
from _kinds import PeerKind

CHILD = Path(__file__).with_name("_child.py")


class Bench:
    """Databases built once per run and shared by the figures that need them."""

    def __init__(self, kind: PeerKind, workdir: Path, sizes: Sizes, log: Callable[[str], None]) -> None:
        self.kind, self.workdir, self.sizes, self.log = kind, workdir, sizes, log
        self._cache: dict[Any, Any] = {}
        self._open: list[peersync.Database] = []

    def once(self, key: Any, make: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def connect(self, db: str) -> peersync.Database:
        peer = self.kind.connect(db)
        self._open.append(peer)
        return peer

    def close(self) -> None:
        for peer in self._open:
            peer.close()
        self._open.clear()

    # -- shared data -----------------------------------------------------------
    def base(self, n: int) -> str:
        """An unprovisioned database holding ``n`` generated rows."""

        def make() -> str:
            self.log(f"generating {n:,} rows")
            return self.kind.create(f"base_{n}", generate(n))

        return str(self.once(("base", n), make))

    def empty(self) -> str:
        return str(self.once("empty", lambda: self.kind.create("empty")))

    def empty_provisioned(self) -> str:
        def make() -> str:
            db = self.kind.clone(self.empty(), "empty_prov")
            self.kind.provision(db)
            return db

        return str(self.once("empty_prov", make))

    def source(self, n: int) -> str:
        """A provisioned copy of :meth:`base`: the sync source."""

        def make() -> str:
            db = self.kind.clone(self.base(n), f"src_{n}")
            self.log(f"provisioning the {n:,}-row source")
            self.kind.provision(db)
            return db

        return str(self.once(("src", n), make))

    def child(self, op: str, src: str, dst: str) -> dict[str, Any]:
        cmd = [sys.executable, str(CHILD), self.kind.name, str(self.workdir), op, src, dst]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=CHILD.parent)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr}")
        out: dict[str, Any] = json.loads(proc.stdout)
        return out

    def initial_runs(self, n: int) -> dict[str, Any]:
        """Initial syncs of ``n`` rows and baseline copies, interleaved, each in
        a fresh process (``_child.py``); keeps the last synced pair."""

        def make() -> dict[str, Any]:
            src, base = self.source(n), self.base(n)
            syncs, copies = [], []
            dst = ""
            for i in range(self.sizes.reps):
                self.log(f"initial sync of {n:,} rows, run {i + 1}/{self.sizes.reps}")
                if dst:
                    self.kind.drop(dst)
                dst = self.kind.clone(self.empty_provisioned(), f"dst_{n}")
                syncs.append(self.child("sync", src, dst))
                if syncs[-1]["rows"] != n:
                    raise RuntimeError(f"initial sync sent {syncs[-1]['rows']} rows, expected {n}")
                copy = self.kind.clone(self.empty(), f"copy_{n}")
                copies.append(self.child("copy", base, copy))
                self.kind.drop(copy)
            self._cache[("pair", n)] = (src, dst)
            return {"sync": syncs, "copy": copies}

        out: dict[str, Any] = self.once(("initial", n), make)
        return out

    def cli_runs(self, n: int) -> list[dict[str, Any]]:
        """Initial syncs of ``n`` rows through ``peersync sync``, each timed
        from process start to exit (``_child.py cli``) into a fresh provisioned copy."""

        def make() -> list[dict[str, Any]]:
            # One untimed run between two empty databases first: it leaves the
            # bytecode of every module the command imports in the work folder's
            # cache (``_child.py``), as an installed Python and package have it.
            warm = [self.kind.clone(self.empty_provisioned(), f"cli_warm_{side}") for side in "ab"]
            self.child("cli", *warm)
            for db in warm:
                self.kind.drop(db)
            runs = []
            for i in range(self.sizes.reps):
                self.log(f"initial sync of {n:,} rows through the CLI, run {i + 1}/{self.sizes.reps}")
                dst = self.kind.clone(self.empty_provisioned(), f"cli_{n}")
                runs.append(self.child("cli", self.source(n), dst))
                self.kind.drop(dst)
                if runs[-1]["rows"] != n:
                    raise RuntimeError(f"initial sync through the CLI sent {runs[-1]['rows']} rows, expected {n}")
            return runs

        out: list[dict[str, Any]] = self.once(("cli", n), make)
        return out

    def synced_pair(self, n: int) -> tuple[str, str]:
        """Source and destination after an initial sync of ``n`` rows (the
        timed one when figure 1 ran, else an untimed one here)."""

        def make() -> tuple[str, str]:
            src = self.source(n)
            dst = self.kind.clone(self.empty_provisioned(), f"dst_{n}")
            self.log(f"initial sync of {n:,} rows (untimed)")
            with self.kind.connect(src) as a, self.kind.connect(dst) as b:
                peersync.sync(a, b, SCOPE, direction="push")
            return src, dst

        pair: tuple[str, str] = self.once(("pair", n), make)
        return pair

    def update(self, db: str, keys: list[int], seed: int) -> None:
        """A foreign writer updates every column but the key of ``keys``, one transaction."""
        p = self.kind.placeholder
        conn = self.kind.raw(db)
        with conn:
            conn.executemany(
                f"UPDATE {TABLE} SET name = {p}, note = {p}, qty = {p}, price = {p} WHERE id = {p}",
                changed_values(keys, seed),
            )
        conn.close()
