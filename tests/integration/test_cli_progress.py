"""``peersync sync`` draws a progress bar (rows, batches, bytes, rate) on a
terminal, and nothing at all under ``--json`` or when stderr is not a
terminal: a pipe gets the result alone."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import peersync

from ..helpers import write

MakeDb = Callable[..., Path]
SRC = Path(peersync.__file__).resolve().parent.parent


def _pair(make_db: MakeDb, name: str) -> tuple[Path, Path]:
    a, b = make_db(f"{name}-a"), make_db(f"{name}-b")
    for p in (a, b):
        with peersync.connect(p) as d:
            d.provision("s", ["item", "tag"])
    write(a, *(f"INSERT INTO item VALUES ({i}, 'item {i}', {i}, 1.5)" for i in range(3000)))
    return a, b


def _sync(a: Path, b: Path, *extra: str, tty: bool) -> tuple[int, str, str]:
    """Run ``peersync sync A B``; stderr on a pseudo-terminal when ``tty``."""
    args = [sys.executable, "-m", "peersync", "sync", str(a), str(b), "--scope", "s", "--batch-size", "500", *extra]
    env = dict(os.environ, PYTHONPATH=str(SRC), COLUMNS="200", TERM="xterm")
    if not tty:
        proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
        return proc.returncode, proc.stdout, proc.stderr
    master, slave = pty.openpty()
    try:
        with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=slave, env=env, text=True) as proc:
            os.close(slave)
            slave = -1
            chunks = []
            while True:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the terminal's other end closed
                    break
                if not data:
                    break
                chunks.append(data)
            out = proc.stdout.read() if proc.stdout else ""
            code = proc.wait(timeout=120)
    finally:
        os.close(master)
        if slave != -1:
            os.close(slave)
    return code, out, b"".join(chunks).decode(errors="replace")


def test_a_terminal_gets_a_progress_bar(make_db: MakeDb) -> None:
    a, b = _pair(make_db, "tty")
    code, out, err = _sync(a, b, tty=True)
    assert code == 0, err
    assert "3000 rows, 6 batches" in err and "rows/s" in err  # the push's totals, drawn on the terminal
    assert "sent" in out  # the result table still goes to stdout


def test_json_and_pipes_get_no_progress(make_db: MakeDb) -> None:
    a, b = _pair(make_db, "json")
    code, out, err = _sync(a, b, "--json", tty=True)
    assert code == 0 and err == ""
    assert json.loads(out)["sent_a_to_b"] == 3000 and len(out.strip().splitlines()) == 1
    write(a, *(f"INSERT INTO item VALUES ({i}, 'more {i}', {i}, 1.5)" for i in range(5000, 6000)))
    code, out, err = _sync(a, b, tty=False)
    assert code == 0 and err == ""
    assert "rows/s" not in out
