"""One-line CLI errors that name the right thing: the full command in a usage
hint, a directory given as a database, token commands on a file that is not a
database (a typo must not read as "no tokens": an open database)."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from peersync._cli.app import cli

from .test_cli import assert_error, invoke, run_main


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (["token", "add", "x.db"], "(see 'peersync token add --help')"),
        (["token", "list"], "(see 'peersync token list --help')"),
        (["sync"], "(see 'peersync sync --help')"),
    ],
)
def test_a_usage_hint_names_the_whole_command(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, args: list[str], hint: str
) -> None:
    line = assert_error(run_main(capsys, monkeypatch, *args))
    assert line.endswith(hint), line


def test_a_directory_is_said_to_be_a_directory(tmp_path: Path) -> None:
    line = assert_error(invoke("status", tmp_path), "is a directory")
    assert str(tmp_path) in line


@pytest.mark.parametrize("command", [["list"], ["revoke", "tok_x"]])
def test_token_commands_refuse_a_file_that_is_not_a_database(tmp_path: Path, command: list[str]) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("not a database\n")
    assert_error(invoke("token", command[0], junk, *command[1:]), "not a usable SQLite database")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def _commands() -> dict[str, click.Command]:
    """Every leaf command by its name under ``peersync`` ("token add"); asked
    through click's own lookup, which imports each command's module."""
    found: dict[str, click.Command] = {}
    ctx = click.Context(cli)
    for name in cli.list_commands(ctx):
        cmd = cli.get_command(ctx, name)
        assert cmd is not None, name
        if isinstance(cmd, click.Group):
            found.update({f"{name} {sub}": c for sub, c in cmd.commands.items()})
        else:
            found[name] = cmd
    return found


def test_the_readme_says_which_commands_take_timeout() -> None:
    text = " ".join((Path(__file__).parents[2] / "README.md").read_text().split())
    said = re.search(r"takes `--timeout SECONDS` \(.*?\): (.*?); (.*?) do not take it\.", text)
    assert said is not None, "the README's --timeout sentence is gone"
    takes, lacks = ({n.strip("`") for n in re.split(r", | and ", part)} for part in said.groups())
    commands = _commands()
    assert takes | lacks == set(commands)
    for name, cmd in commands.items():
        assert any("--timeout" in p.opts for p in cmd.params) == (name in takes), name


def test_the_main_help_names_every_kind_of_database() -> None:
    r = invoke("--help")
    assert r.code == 0
    for kind in ("SQLite", "PostgreSQL", "MariaDB", "postgresql://", "mysql://", "http(s)://"):
        assert kind in r.stdout, kind
