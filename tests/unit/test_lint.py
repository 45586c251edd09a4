"""The code on main stays `mypy --strict` and `ruff` clean: checked as tests so the one
test command covers them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_mypy_strict_is_clean_on_src() -> None:
    r = run(sys.executable, "-m", "mypy", "--strict", "src/peersync")
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is not installed (pip install -e '.[test]')")
def test_ruff_is_clean_on_src() -> None:
    r = run("ruff", "check", "src")
    assert r.returncode == 0, r.stdout + r.stderr
    r = run("ruff", "format", "--check", "src")
    assert r.returncode == 0, r.stdout + r.stderr
