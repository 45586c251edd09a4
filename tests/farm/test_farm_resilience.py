"""A farm over servers that go away and come back, and a farm that is
stopped: it backs off from a down server (waits that double up to the cap),
keeps the other links going, catches up once the server is back, and on
SIGINT or SIGTERM lets the session in hand finish, or on a second signal
leaves it without losing or doubling anything."""

from __future__ import annotations

import itertools
import signal
import sqlite3
import statistics
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from ..http.conftest import Server
from .conftest import SCOPE, FarmProcess, make_db, notes, write_config
from .test_farm_scenario import wait_until_servers_agree


def insert(path: Path, ids: range, prefix: str) -> None:
    conn = sqlite3.connect(path, timeout=30)
    with conn:
        conn.executemany("INSERT INTO note VALUES (?, ?, ?)", ((f"{prefix}{i}", "x" * 20, i) for i in ids))
    conn.close()


def count(path: Path, timeout: float = 30) -> int:
    conn = sqlite3.connect(path, timeout=timeout)
    try:
        n: int = conn.execute("SELECT count(*) FROM note").fetchone()[0]
        return n
    finally:
        conn.close()


def peek(path: Path) -> int | None:
    """The rows now, or None while a writer holds the file."""
    try:
        return count(path, timeout=0.01)
    except sqlite3.OperationalError:
        return None


def failures(events: list[dict[str, Any]], link: str, mark: int) -> list[dict[str, Any]]:
    return [e for e in events[mark:] if e["link"] == link and not e["ok"]]


def test_a_server_down_makes_its_links_back_off_then_catch_up(tmp_path: Path, farm_process: Any) -> None:
    servers = {n: Server(make_db(tmp_path / f"{n}.db")).start() for n in "abc"}
    try:
        config = write_config(
            tmp_path / "farm.toml",
            {n: s.url for n, s in servers.items()},
            scope=SCOPE,
            topology="ring",
            interval=0.2,
            backoff=0.2,
            max_backoff=0.8,
        )
        farm: FarmProcess = farm_process(config)
        farm.wait_for(lambda ev: {e["link"] for e in ev if e["ok"]} == {"a<->b", "b<->c", "c<->a"})
        mark = len(farm.events)
        servers["b"].stop()
        insert(servers["a"].db, range(5), "a")
        insert(servers["c"].db, range(5), "c")
        farm.wait_for(lambda ev: all(len(failures(ev, x, mark)) >= 4 for x in ("a<->b", "b<->c")), timeout=60)
        for link in ("a<->b", "b<->c"):
            failed = failures(farm.events, link, mark)[:4]
            assert [e["failures"] for e in failed] == [1, 2, 3, 4]
            assert [e["retry_in"] for e in failed] == [0.2, 0.4, 0.8, 0.8]
            assert all(servers["b"].url in e["error"] for e in failed)
            for prev, nxt in itertools.pairwise(failed):
                gap = _seconds(nxt["time"]) - _seconds(prev["time"]) - prev["seconds"]
                assert gap >= prev["retry_in"] - 0.05, (link, prev, nxt)
        assert any(e["ok"] and e["link"] == "c<->a" and e["sent_a_to_b"] for e in farm.events[mark:])
        wait_until_servers_agree({n: servers[n] for n in "ac"}, 10)
        time.sleep(1.5)  # the failing links wait 0.8 s a round by now
        down_until = time.time()
        # The link between the two servers that are up went on meanwhile, on
        # its own interval (0.2 s), not the failing links' backoff (0.8 s).
        since = _seconds(failures(farm.events, "a<->b", mark)[2]["time"])
        meanwhile = [
            e for e in farm.events[mark:] if e["link"] == "c<->a" and since <= _seconds(e["time"]) < down_until
        ]
        assert len(meanwhile) >= 3 and all(e["ok"] for e in meanwhile), meanwhile
        waits = [_seconds(n["time"]) - _seconds(p["time"]) - p["seconds"] for p, n in itertools.pairwise(meanwhile)]
        assert statistics.median(waits) < 0.4, waits
        servers["b"].start()
        back = len(farm.events)
        wait_until_servers_agree(servers, 10)
        farm.wait_for(lambda ev: {e["link"] for e in ev[back:] if e["ok"]} >= {"a<->b", "b<->c"})
        rc, err = farm.stop(signal.SIGINT)
        assert rc == 0, err
        assert "Traceback" not in err
    finally:
        for s in servers.values():
            s.stop()


def _seconds(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


ROWS = 2_000


@pytest.fixture
def big_pair(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Two databases here (no server needed): ``a`` with many rows, ``b``
    empty, and a farm file whose small batches make a long session."""
    a, b = make_db(tmp_path / "a.db"), make_db(tmp_path / "b.db")
    insert(a, range(ROWS), "r")
    # WAL: the test reads b's rows while the farm commits batch after batch
    # into it, and sees each batch as soon as it commits.
    conn = sqlite3.connect(b)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    config = write_config(
        tmp_path / "farm.toml", {"a": str(a), "b": str(b)}, scope=SCOPE, topology="ring", interval=60, batch_size=25
    )
    return a, b, config


def _wait_mid_session(b: Path) -> int:
    deadline = time.monotonic() + 60
    while not (n := peek(b)):
        assert time.monotonic() < deadline, "the session did not start"
        time.sleep(0.01)
    assert n < ROWS // 2, f"{n} of {ROWS} rows arrived before the test could stop the session: make it longer"
    return n


def test_sigterm_lets_the_session_in_hand_finish_then_exits_0(
    big_pair: tuple[Path, Path, Path], farm_process: Any
) -> None:
    a, b, config = big_pair
    farm: FarmProcess = farm_process(config)
    _wait_mid_session(b)
    rc, err = farm.stop(signal.SIGTERM)
    assert rc == 0, err
    assert "stopping after the sessions in hand" in err
    [event] = farm.events
    assert event["ok"] and event["sent_a_to_b"] == ROWS and event["completed"]
    assert notes(b) == notes(a)


def test_a_second_signal_leaves_the_session_in_hand_and_the_next_run_sends_only_the_rest(
    big_pair: tuple[Path, Path, Path], farm_process: Any
) -> None:
    a, b, config = big_pair
    farm: FarmProcess = farm_process(config)
    _wait_mid_session(b)
    # Two signals of one kind may arrive as one: Ctrl-C, then SIGTERM.
    farm.proc.send_signal(signal.SIGINT)
    rc, err = farm.stop(signal.SIGTERM)
    assert rc == 1, err
    assert "leaving the sessions in hand" in err and "sessions left in hand" in err
    assert farm.events == []  # the session in hand was not logged as done
    held = count(b)
    assert 0 < held < ROWS
    again: FarmProcess = farm_process(config, "--once")
    rc = again.proc.wait(timeout=120)
    again.wait_for(lambda ev: len(ev) == 1)
    [event] = again.events
    assert rc == 0 and event["ok"]
    assert event["sent_a_to_b"] == ROWS - held  # nothing committed is sent twice
    assert notes(b) == notes(a)
