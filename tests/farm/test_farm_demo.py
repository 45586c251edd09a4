"""``python examples/farm_demo.py``, the farm scenario in one command, run
as the README shows it (small sizes): three servers, the farm, five clients;
it must report identical replicas and every row received exactly once."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from ..http.conftest import env

DEMO = Path(__file__).resolve().parents[2] / "examples" / "farm_demo.py"


def test_the_farm_demo_converges_and_counts_every_row_received_once(tmp_path: Path) -> None:
    args = ["--insert-rounds", "2", "--mixed-rounds", "2", "--writes", "2", "--interval", "0.2", "--seed", "7"]
    p = subprocess.run(
        [sys.executable, str(DEMO), *args, "--keep", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        env=env(),
        timeout=240,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "all 8 replicas hold identical rows: yes" in p.stdout
    assert "every client received each row the others created exactly once: yes" in p.stdout
    # five clients, each created 4 rows in the insert rounds and received the 16 of the others
    rows = re.findall(r"^client\d\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$", p.stdout, re.M)
    assert rows == [("4", "16", "16", "0")] * 5, p.stdout
    assert sorted(f.name for f in (tmp_path / "demo").glob("*.db")) == [
        *(f"client{i}.db" for i in range(1, 6)),
        "server-a.db",
        "server-b.db",
        "server-c.db",
    ]
