"""The code stays `mypy --strict` and `ruff` clean: checked as tests so the one
test command covers them.

Ruff runs as ``python -m ruff`` with the interpreter running the tests, never
as whatever ``ruff`` is first on ``PATH``, and is never skipped: it is a
declared test dependency (``pip install -e '.[test]'``), so a missing ruff
fails here instead of passing silently."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINTED = ("src", "tests", "bench")


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_mypy_strict_is_clean_on_src() -> None:
    r = run(sys.executable, "-m", "mypy", "--strict", "src/peersync")
    assert r.returncode == 0, r.stdout + r.stderr


def test_ruff_check_is_clean_on_src_tests_and_bench() -> None:
    r = run(sys.executable, "-m", "ruff", "check", *LINTED)
    assert r.returncode == 0, r.stdout + r.stderr


def test_ruff_format_is_clean_on_src_tests_and_bench() -> None:
    r = run(sys.executable, "-m", "ruff", "format", "--check", *LINTED)
    assert r.returncode == 0, r.stdout + r.stderr
