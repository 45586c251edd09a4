"""The farm file: what it may say, and how a bad one is refused (one line,
exit 2, nothing synced); ``--once`` over databases here, no server needed."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

import peersync
from peersync._cli.main import cli
from peersync.farm import Farm, SessionEvent, load_config, parse_config

from .conftest import SCOPE, make_db, notes, write_config


def invoke(*args: object) -> tuple[int, str, str]:
    res = CliRunner().invoke(cli, [str(a) for a in args])
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise AssertionError(f"peersync {args} raised {res.exception!r}") from res.exception
    return res.exit_code, res.stdout, res.stderr


@pytest.fixture
def trio(tmp_path: Path) -> dict[str, Path]:
    dbs = {n: make_db(tmp_path / f"{n}.db") for n in "abc"}
    conn = sqlite3.connect(dbs["a"])
    conn.execute("INSERT INTO note VALUES ('a1', 'from a', 1)")
    conn.commit()
    conn.close()
    return dbs


GOOD = """scope = "notes"
topology = "ring"
[servers.a]
url = "a.db"
[servers.b]
url = "b.db"
[servers.c]
url = "c.db"
"""

BAD: list[tuple[str, str, str]] = [
    ("not TOML", "scope = \n", r"not valid TOML"),
    ("unknown key", "intervall = 3\n" + GOOD, r"unknown key 'intervall' in the file"),
    ("unknown server key", GOOD.replace('url = "c.db"', 'url = "c.db"\ntokn = "x"'), r"unknown key 'tokn'"),
    ("no servers", 'scope = "notes"\ntopology = "ring"\n', r"no \[servers\]"),
    ("one server", 'scope = "notes"\ntopology = "ring"\n[servers.a]\nurl = "a.db"\n', r"at least two servers"),
    ("server without url", GOOD.replace('url = "c.db"', 'ca = "x"'), r"\[servers.c\] needs url"),
    ("unknown scheme", GOOD.replace('"c.db"', '"ftp://host/c"'), r"unsupported URL 'ftp://host/c'"),
    ("same url twice", GOOD.replace('"c.db"', '"b.db"'), r"same url"),
    ("unknown topology", GOOD.replace('"ring"', '"star"'), r'topology must be "ring" or "mesh"'),
    ("topology and links", 'links = [["a", "b"]]\n' + GOOD, r"only one"),
    ("neither", GOOD.replace('topology = "ring"\n', ""), r'give topology = "ring"'),
    ("link to nobody", GOOD.replace('topology = "ring"', 'links = [["a", "z"]]'), r"server 'z', which is not"),
    ("link to itself", GOOD.replace('topology = "ring"', 'links = [["a", "a"]]'), r"joins 'a' to itself"),
    ("link twice", GOOD.replace('topology = "ring"', 'links = [["a", "b"], ["b", "a"]]'), r"given twice"),
    ("link not a pair", GOOD.replace('topology = "ring"', 'links = [["a", "b", "c"]]'), r"pair of server names"),
    ("no scope", GOOD.replace('scope = "notes"\n', ""), r"no scope for the link a <-> b"),
    ("scope and scopes", 'scopes = ["x"]\n' + GOOD, r"scope or scopes, not both"),
    ("interval zero", "interval = 0\n" + GOOD, r"interval must be above 0"),
    ("interval text", 'interval = "5s"\n' + GOOD, r"interval must be a number of seconds"),
    ("backoff above its cap", "backoff = 10\nmax_backoff = 5\n" + GOOD, r"max_backoff \(5\) is below backoff"),
    ("batch size", "batch_size = 0\n" + GOOD, r"batch_size must be a whole number"),
    ("policy", 'policy = "newest"\n' + GOOD, r"policy must be one of"),
    ("token on a file", GOOD.replace('url = "c.db"', 'url = "c.db"\ntoken = "pst_x"'), r"only to an http"),
    (
        "token and token_env",
        GOOD.replace('url = "c.db"', 'url = "http://127.0.0.1:1"\ntoken = "t"\ntoken_env = "T"'),
        r"token or token_env, not both",
    ),
    (
        "token_env unset",
        GOOD.replace('url = "c.db"', 'url = "http://127.0.0.1:1"\ntoken_env = "PEERSYNC_FARM_TEST_UNSET"'),
        r"PEERSYNC_FARM_TEST_UNSET \(token_env\) is not set",
    ),
]


@pytest.mark.parametrize(("text", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_farm_file_is_one_line_exit_2_and_syncs_nothing(
    tmp_path: Path, trio: dict[str, Path], text: str, message: str
) -> None:
    config = tmp_path / "farm.toml"
    config.write_text(text)
    before = {n: notes(p) for n, p in trio.items()}
    code, out, err = invoke("farm", config, "--once")
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith(f"peersync: error: {config}: "), err
    assert re.search(message, err), err
    assert {n: notes(p) for n, p in trio.items()} == before
    with pytest.raises(peersync.ConfigurationError, match=message):
        load_config(config, environ={})


def test_a_missing_farm_file_is_one_line_exit_2(tmp_path: Path) -> None:
    code, out, err = invoke("farm", tmp_path / "nope.toml")
    assert (code, out) == (2, "")
    assert re.fullmatch(r"peersync: error: cannot read the farm file .*nope\.toml: .*\n", err), err


def test_ring_mesh_and_explicit_links_with_their_scopes() -> None:
    servers = {n: {"url": f"http://127.0.0.1:{8000 + i}"} for i, n in enumerate("abcd")}
    ring = parse_config({"scope": "s", "topology": "ring", "servers": servers})
    assert [(x.a, x.b) for x in ring.links] == [("a", "b"), ("b", "c"), ("c", "d"), ("d", "a")]
    mesh = parse_config({"scopes": ["s", "t"], "topology": "mesh", "servers": servers})
    assert len(mesh.links) == 6 and {x.scopes for x in mesh.links} == {("s", "t")}
    two = parse_config({"scope": "s", "topology": "ring", "servers": {"a": servers["a"], "b": servers["b"]}})
    assert [(x.a, x.b) for x in two.links] == [("a", "b")]
    pairs = parse_config(
        {"scope": "s", "links": [["a", "b"], {"between": ["c", "d"], "scopes": ["t"]}], "servers": servers}
    )
    assert [(x.name, x.scopes) for x in pairs.links] == [("a<->b", ("s",)), ("c<->d", ("t",))]


def test_tokens_come_from_the_environment_and_paths_from_the_files_folder(tmp_path: Path) -> None:
    config = tmp_path / "farm.toml"
    config.write_text(
        'scope = "s"\ntopology = "ring"\n'
        '[servers.a]\nurl = "http://127.0.0.1:8001"\ntoken_env = "FARM_A"\nca = "certs/ca.pem"\n'
        '[servers.b]\nurl = "b.db"\n'
    )
    cfg = load_config(config, environ={"FARM_A": "pst_secret"})
    a, b = cfg.servers
    assert (a.token, a.ca, a.remote) == ("pst_secret", str(tmp_path / "certs/ca.pem"), True)
    assert (b.url, b.token, b.remote) == (str(tmp_path / "b.db"), None, False)
    assert "pst_secret" not in repr(cfg)


def test_backoff_doubles_from_backoff_up_to_its_cap() -> None:
    servers = {n: {"url": f"{n}.db"} for n in "ab"}
    cfg = parse_config(
        {"scope": "s", "topology": "ring", "servers": servers, "interval": 7, "backoff": 0.5, "max_backoff": 3}
    )
    farm = Farm(cfg)
    assert [farm.delay(n) for n in range(6)] == [7.0, 0.5, 1.0, 2.0, 3.0, 3.0]
    assert farm.delay(10_000) == 3.0


def test_once_syncs_every_link_one_round_and_logs_each_session(tmp_path: Path, trio: dict[str, Path]) -> None:
    config = tmp_path / "farm.toml"
    config.write_text(GOOD)
    code, out, err = invoke("farm", config, "--once", "--json")
    assert (code, err) == (0, "")
    events = [json.loads(line) for line in out.splitlines()]
    assert sorted(e["link"] for e in events) == ["a<->b", "b<->c", "c<->a"]
    assert all(e["ok"] and e["scope"] == SCOPE and e["round"] == 1 and e["seconds"] > 0 for e in events)
    # the row made at a reaches b and c directly (a ring of three links every pair)
    assert sum(e["sent_a_to_b"] + e["sent_b_to_a"] for e in events) >= 2
    assert notes(trio["a"]) == notes(trio["b"]) == notes(trio["c"]) == [("a1", "from a", 1)]
    code, out, _ = invoke("farm", config, "--once")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3
    assert all(
        re.search(r" notes #1: \w->\w 0 rows, \w->\w 0 rows, 0 conflicts, 0 errors, [\d.]+ ms$", x) for x in lines
    )


def test_once_exits_1_when_a_link_fails_and_the_other_links_still_sync(tmp_path: Path, trio: dict[str, Path]) -> None:
    config = write_config(
        tmp_path / "farm.toml",
        {"a": "a.db", "b": "b.db", "gone": "gone.db"},
        scope=SCOPE,
        links=[["a", "b"], ["b", "gone"]],
    )
    code, out, err = invoke("farm", config, "--once", "--json")
    assert code == 1
    assert err == "peersync: error: 1 of 2 sessions failed (see the log)\n"
    by_link = {e["link"]: e for e in map(json.loads, out.splitlines())}
    assert by_link["a<->b"]["ok"] and by_link["a<->b"]["sent_a_to_b"] == 1
    failed = by_link["b<->gone"]
    assert not failed["ok"] and "gone.db" in failed["error"] and failed["failures"] == 1
    assert failed["retry_in"] is None  # --once does not retry
    assert notes(trio["b"]) == [("a1", "from a", 1)]


def test_the_api_runs_a_ring_of_four_to_convergence_in_rounds(tmp_path: Path) -> None:
    dbs = [make_db(tmp_path / f"p{i}.db") for i in range(4)]
    for i, p in enumerate(dbs):
        conn = sqlite3.connect(p)
        conn.execute("INSERT INTO note VALUES (?, ?, ?)", (f"p{i}", "x", i))
        conn.commit()
        conn.close()
    cfg = parse_config(
        {"scope": SCOPE, "topology": "ring", "servers": {f"p{i}": {"url": str(p)} for i, p in enumerate(dbs)}}
    )
    seen: list[SessionEvent] = []
    for _ in range(2):  # two hops reach the far side of a ring of four
        run = Farm(cfg, on_event=seen.append).run(once=True)
        assert (run.sessions, run.failed, run.abandoned) == (4, 0, 0)
    assert all(e.ok and e.result is not None for e in seen)
    assert len({tuple(notes(p)) for p in dbs}) == 1 and len(notes(dbs[0])) == 4
    quiet: list[SessionEvent] = []
    Farm(cfg, on_event=quiet.append).run(once=True)
    assert [e.result.sent_a_to_b + e.result.sent_b_to_a for e in quiet if e.result] == [0, 0, 0, 0]


def test_a_scope_that_fails_does_not_keep_the_links_other_scopes_from_syncing(
    tmp_path: Path, trio: dict[str, Path]
) -> None:
    config = write_config(
        tmp_path / "farm.toml", {"a": "a.db", "b": "b.db"}, scopes=["missing", SCOPE], topology="ring"
    )
    code, out, err = invoke("farm", config, "--once", "--json")
    assert code == 1 and err == "peersync: error: 1 of 2 sessions failed (see the log)\n"
    missing, synced = (json.loads(line) for line in out.splitlines())
    assert (missing["scope"], missing["ok"], missing["failures"]) == ("missing", False, 1)
    assert "missing" in missing["error"]
    assert (synced["scope"], synced["ok"], synced["sent_a_to_b"]) == (SCOPE, True, 1)
    assert notes(trio["b"]) == [("a1", "from a", 1)]


def test_the_farm_module_is_a_curated_public_face() -> None:
    import peersync.farm

    assert peersync.farm.__all__ == sorted(peersync.farm.__all__)
    for name in peersync.farm.__all__:
        assert getattr(peersync.farm, name).__module__.startswith("peersync._farm."), name


def test_a_config_built_by_hand_is_checked_like_the_file() -> None:
    from peersync.farm import FarmConfig, Link, Server

    servers = (Server("a", "a.db"), Server("b", "b.db"))
    with pytest.raises(peersync.ConfigurationError, match="names the server 'z'"):
        FarmConfig(servers, (Link("a", "z", ("s",)),))
    with pytest.raises(peersync.ConfigurationError, match="at least one link"):
        FarmConfig(servers, ())
    with pytest.raises(peersync.ConfigurationError, match="backoff at most max_backoff"):
        FarmConfig(servers, (Link("a", "b", ("s",)),), backoff=5, max_backoff=1)
