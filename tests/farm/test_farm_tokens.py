"""A farm's tokens: read from the variable its file names (so the secret
need not sit in the file) and sent to the server; a wrong one is refused by
the server like any client's, logged, and the round counts as failed."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from click.testing import CliRunner

from peersync._cli.main import cli
from peersync.server import Right, TokenStore, store_path

from ..http.conftest import Server
from .conftest import SCOPE, make_db, notes


def test_the_farm_sends_the_token_named_by_token_env_and_a_wrong_one_fails_the_round(tmp_path: Path) -> None:
    served = make_db(tmp_path / "served.db")
    local = make_db(tmp_path / "local.db")
    _, token = TokenStore(store_path(str(served))).add([SCOPE], Right.WRITE)
    conn = sqlite3.connect(local)
    with conn:
        conn.execute("INSERT INTO note VALUES ('l1', 'from local', 1)")
    conn.close()
    server = Server(served).start()
    try:
        config = tmp_path / "farm.toml"
        config.write_text(
            f'scope = "{SCOPE}"\ntopology = "ring"\n'
            f'[servers.served]\nurl = "{server.url}"\ntoken_env = "FARM_TEST_TOKEN"\n'
            '[servers.local]\nurl = "local.db"\n'
        )
        assert token not in config.read_text()

        def once(secret: str) -> tuple[int, list[dict[str, object]], str]:
            res = CliRunner().invoke(cli, ["farm", str(config), "--once", "--json"], env={"FARM_TEST_TOKEN": secret})
            return res.exit_code, [json.loads(line) for line in res.stdout.splitlines()], res.stderr

        code, events, err = once(token[:-2] + ("xx" if not token.endswith("xx") else "yy"))
        assert code == 1, err
        [event] = events
        assert event["ok"] is False and "token" in str(event["error"]).lower()
        assert notes(served) == []
        code, events, err = once(token)
        assert code == 0, err
        [event] = events
        assert event["ok"] is True and event["sent_b_to_a"] == 1  # local -> served
        assert notes(served) == notes(local) == [("l1", "from local", 1)]
    finally:
        server.stop()
