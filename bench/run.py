"""peersync's benchmark: every figure of issue 3 against a baseline measured in
the same run on the same data, printed as one table.

    python bench/run.py                  # the full run: 1,000,000 rows (2-4 minutes on 2 cores)
    python bench/run.py --quick          # small sizes, under a minute (CI smoke run)
    python bench/run.py --only initial-sync,no-change --rows 200000
    python bench/run.py --json > figures.json

Data is generated into a temporary folder and deleted afterwards. Times come
from ``time.perf_counter``; each figure's note says whether it is the best or
the median of its runs. Progress goes to stderr; the table (or, with
``--json``, the JSON document) to stdout. Peer kinds other than SQLite plug in
through ``bench/_kinds.py`` (``--kind``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import msgpack
from rich.console import Console
from rich.table import Table

import peersync
from _bench import Bench
from _common import Figure, Sizes
from _figures import FIGURES, run_figures
from _kinds import KINDS, make_kind


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        cpu = platform.processor() or cpu
    mem = None
    try:
        with open("/proc/meminfo") as f:
            kib = next(int(line.split()[1]) for line in f if line.startswith("MemTotal:"))
        mem = round(kib / 1024 / 1024, 1)
    except (OSError, StopIteration):
        pass
    return {
        "peersync_source": _source(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": mem,
        "os": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "peersync": peersync.__version__,
        "msgpack": ".".join(map(str, msgpack.version)),
    }


def _source() -> str:
    """Where the measured peersync comes from: its folder, and its git commit if any."""
    src = Path(peersync.__file__).resolve().parent
    try:
        rev = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(src), "status", "--porcelain", "--", "."], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return str(src)
    return f"{src} @ {rev}{' + uncommitted changes' if dirty else ''}"


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value:.3f} s" if value < 10 else f"{value:.2f} s"
    if unit == "ms":
        return f"{value:.1f} ms" if value < 100 else f"{value:,.0f} ms"
    if unit in ("B/row", "MiB"):
        return f"{value:.1f} {unit}"
    if unit == "B":
        return f"{value:,.0f} B"
    return f"{value:,.0f}" + (f" {unit}" if unit != "changes" else "")


def _sort_key(f: Figure) -> tuple[int, str]:
    digits = "".join(c for c in f.number if c.isdigit())
    return int(digits), f.number


def render(console: Console, figures: list[Figure], info: dict[str, Any], command: str, seconds: float) -> None:
    console.print(
        f"[bold]peersync benchmark[/bold]  {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB;"
        f" Python {info['python']}, SQLite {info['sqlite']}, peersync {info['peersync']}, msgpack {info['msgpack']}"
    )
    console.print(f"{info['os']}; peersync from {info['peersync_source']}")
    console.print(f"command: {command}")
    table = Table(show_lines=False)
    for col, justify in (
        ("#", "right"),
        ("figure", "left"),
        ("peersync", "right"),
        ("baseline", "right"),
        ("ratio", "right"),
        ("target", "left"),
        ("verdict", "left"),
    ):
        table.add_column(col, justify=justify, no_wrap=col != "figure")
    for f in sorted(figures, key=_sort_key):
        verdict = {"meets": "[green]meets[/green]", "misses": "[red]misses[/red]"}.get(f.verdict, f.verdict)
        ratio = "-" if f.ratio is None else f"{f.ratio:.2f}x"
        table.add_row(f.number, f.name, fmt(f.peersync, f.unit), fmt(f.baseline, f.unit), ratio, f.target, verdict)
    console.print(table)
    console.print("[bold]notes[/bold]")
    for f in sorted(figures, key=_sort_key):
        parts = [p for p in (f"baseline: {f.baseline_label}" if f.baseline_label else "", f.note) if p]
        if parts:
            console.print(f"{f.number:>3}  " + "; ".join(parts), highlight=False)
    missed = [f.number for f in sorted(figures, key=_sort_key) if f.verdict == "misses"]
    console.print(
        f"{len(figures)} figures, {len(missed)} missed"
        + (f" ({', '.join(missed)})" if missed else "")
        + f"; ran in {seconds:.0f} s"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], prog="bench/run.py")
    parser.add_argument("--rows", type=int, help="N, the big table's rows (default 1,000,000; 20,000 with --quick)")
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run (under a minute)")
    parser.add_argument("--only", help=f"comma-separated figures to run: {','.join(FIGURES)}")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON on stdout (table to stderr)")
    parser.add_argument("--kind", choices=sorted(KINDS), default="sqlite", help="the peer kind to measure")
    parser.add_argument("--workdir", help="where to build the databases (default: a new temporary folder)")
    args = parser.parse_args(argv)
    names = list(FIGURES) if not args.only else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        parser.error(f"unknown figure(s) {', '.join(unknown)}; choose from {', '.join(FIGURES)}")
    try:
        sizes = Sizes.make(args.rows, args.quick)
    except ValueError as exc:
        parser.error(str(exc))

    out = Console(stderr=args.json, width=None if sys.stdout.isatty() else 170, highlight=False)
    err = Console(stderr=True, highlight=False)
    start = time.perf_counter()

    def log(msg: str) -> None:
        err.print(f"[dim][{time.perf_counter() - start:6.1f} s][/dim] {msg}")

    info = machine()
    command = "python bench/run.py" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    log(f"{info['cpu']}, {info['cores']} cores; sizes: {sizes}")
    with tempfile.TemporaryDirectory(prefix="peersync-bench-", dir=args.workdir) as tmp:
        workdir = Path(tmp)
        bench = Bench(make_kind(args.kind, workdir), workdir, sizes, log)
        try:
            figures = run_figures(bench, names)
        finally:
            bench.close()
    seconds = time.perf_counter() - start
    render(out, figures, info, command, seconds)
    if args.json:
        doc = {
            "command": command,
            "machine": info,
            "kind": args.kind,
            "sizes": dataclasses.asdict(sizes),
            "seconds": round(seconds, 1),
            "figures": [f.to_dict() for f in sorted(figures, key=_sort_key)],
        }
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
