"""Run one initial sync or one baseline copy in a fresh process and report its
time (wall and CPU) and memory as JSON, so that peak memory is that of this operation alone.

    python bench/_child.py KIND WORKDIR sync SRC DST
    python bench/_child.py KIND WORKDIR copy SRC DST
    python bench/_child.py KIND WORKDIR cli SRC DST    # ``peersync sync`` in its own process, timed whole
    python bench/_child.py KIND WORKDIR clone SRC DST

Memory: ``rss_before`` is the resident size just before the operation (the
interpreter, peersync and open connections); ``peak`` the high-water mark
after it, reset just before it where Linux allows (/proc/self/clear_refs);
``grown`` = peak - rss_before, the memory the operation itself needed.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import peersync
from _common import SCOPE
from _kinds import make_kind


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _with_bytecode(workdir: Path) -> dict[str, str]:
    """The environment of a timed command, with peersync's bytecode compiled
    beforehand into the work folder, as an installed package has it (pip
    compiles it at install): a source checkout run with
    ``PYTHONDONTWRITEBYTECODE`` would otherwise compile every module it
    imports at each start, which no user's command pays."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    package = str(Path(peersync.__file__).resolve().parent)
    subprocess.run([sys.executable, "-m", "compileall", "-q", package], check=True, env=env, capture_output=True)
    return env


def main(argv: list[str]) -> None:
    kind_name, workdir, op, src, dst = argv
    kind = make_kind(kind_name, Path(workdir))
    rows = 0
    if op == "sync":
        a, b = kind.connect(src), kind.connect(dst)
        a.describe(SCOPE), b.describe(SCOPE)  # warm both connections as a real caller's would be
        before = _status_kib("VmRSS")
        reset = _reset_peak()
        t0, c0 = time.perf_counter(), time.process_time()
        result = peersync.sync(a, b, SCOPE, direction="push")
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        rows, nbytes, batches = result.sent_a_to_b, result.bytes, result.batches
        a.close()
        b.close()
    elif op == "copy":
        before = _status_kib("VmRSS")
        reset = _reset_peak()
        t0, c0 = time.perf_counter(), time.process_time()
        rows = kind.copy_rows(src, dst)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        nbytes = batches = 0
    elif op == "clone":
        before = _status_kib("VmRSS")
        reset = _reset_peak()
        t0, c0 = time.perf_counter(), time.process_time()
        rows = peersync.clone(src, dst, SCOPE).tracked_rows
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        nbytes = batches = 0
    elif op == "cli":
        # What a user's command costs, from process start to exit (both databases provisioned before).
        before, reset = 0, False
        env = _with_bytecode(Path(workdir))
        cmd = [sys.executable, "-m", "peersync", "sync", src, dst, "--scope", SCOPE, "--direction", "push", "--json"]
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
        seconds = time.perf_counter() - t0
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
        cpu = ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime
        out = json.loads(proc.stdout)
        rows, nbytes, batches = out["sent_a_to_b"], out["bytes"], out["batches"]
    else:
        raise SystemExit(f"unknown operation {op!r}")
    peak = _status_kib("VmHWM") if reset else None
    if peak is None:  # no /proc: the lifetime peak, in KiB on Linux
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    before = before or 0
    json.dump(
        {
            "seconds": seconds,
            "cpu_seconds": cpu,
            "rows": rows,
            "bytes": nbytes,
            "batches": batches,
            "rss_before_kib": before,
            "peak_kib": peak,
            "grown_kib": max(peak - before, 0),
            "peak_reset": reset,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
