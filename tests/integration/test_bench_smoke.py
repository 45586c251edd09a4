"""The benchmark runs end to end (CI checks that it runs, never its times)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "run.py"

# One name per figure of issue 3's table (4 and 6-8 have several rows).
FIGURE_NAMES = [
    "initial sync",
    "initial sync through the CLI",
    "incremental",
    "session with no changes",
    "bulk INSERT overhead",
    "bulk UPDATE overhead",
    "bulk DELETE overhead",
    "single-row UPDATE overhead",
    "tracking bytes/row, provisioned table",
    "tracking bytes/row, synced copy",
    "wire bytes per changed row",
    "wire batch header",
    "peak memory, sync 2,000 vs 200 rows",
    "peak memory, sync vs copy",
    "knowledge bytes per replica",
    "P1 -> P2 -> P3 -> P1",
    "provisioning",
]

pytestmark = pytest.mark.skipif(not BENCH.exists(), reason="bench/ is not part of this checkout")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=180, check=False)


def test_quick_run_prints_every_figure() -> None:
    proc = run("--quick", "--rows", "2000")
    assert proc.returncode == 0, proc.stderr
    for name in FIGURE_NAMES:
        assert name in proc.stdout, f"figure {name!r} missing from:\n{proc.stdout}"
    assert "Python" in proc.stdout and "SQLite" in proc.stdout  # the machine line


def test_json_output_is_one_document() -> None:
    proc = run("--quick", "--rows", "500", "--only", "loop,knowledge", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["machine"]["sqlite"] and doc["sizes"]["rows"] == 500
    figures = {f["number"]: f for f in doc["figures"]}
    assert set(figures) == {"9", "10"}
    assert figures["10"]["peersync"] == 0  # no change comes back round the loop
    assert all(f["verdict"] in ("meets", "misses", "-") for f in figures.values())


def test_unknown_figure_is_refused() -> None:
    proc = run("--only", "no-such-figure")
    assert proc.returncode == 2
    assert "unknown figure" in proc.stderr
