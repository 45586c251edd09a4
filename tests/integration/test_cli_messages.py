"""One-line CLI errors that name the right thing: the full command in a usage
hint, a directory given as a database, token commands on a file that is not a
database (a typo must not read as "no tokens": an open database)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from peersync._cli.main import main

from .test_cli import Run, assert_error, invoke


def _main(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: object) -> Run:
    """In process, through the real entry point (which adds the usage hint)."""
    monkeypatch.setattr(sys, "argv", ["peersync", *(str(a) for a in args)])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return Run(code, out, err)


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
    line = assert_error(_main(capsys, monkeypatch, *args))
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
