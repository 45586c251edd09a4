"""The ``peersync`` command group, its shared options and error handling.

Every :class:`~peersync.SyncError` becomes one line on stderr and exit code 2.
Subcommands live in a file each (``manage``, ``sync``, ``inspect``, ``demo``)
and register on :data:`cli` when that file is imported: :data:`COMMANDS` says
which file holds which command, and the group imports it when the command is
asked for, so a command's start pays for its own imports alone (figure 1c
times ``peersync sync`` from process start). rich, too, is imported only
when something is drawn (:data:`out`, the progress bar).
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

import peersync
from peersync._engine.registry import scheme_of

if TYPE_CHECKING:
    from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])
EXIT_ERROR = 2

# command -> the module of this package that defines it
COMMANDS = {
    "clone": "clone",
    "compact": "manage",
    "conflicts": "inspect",
    "demo": "demo",
    "deprovision": "manage",
    "farm": "farm",
    "init": "manage",
    "reidentify": "manage",
    "repair": "manage",
    "serve": "serve",
    "status": "inspect",
    "sync": "sync",
    "token": "token",
}


class _Out:
    """stdout's rich console, made when first used (``out.print``,
    ``out.console``): a command that prints no table or markup never
    imports rich."""

    _made: Console | None = None

    @property
    def console(self) -> Console:
        if self._made is None:
            from rich.console import Console

            self._made = Console(highlight=False)
        return self._made

    def print(self, *objects: Any, **options: Any) -> None:
        self.console.print(*objects, **options)


out = _Out()


class LazyGroup(click.Group):
    """A group whose subcommands are imported when asked for, by name
    (:data:`COMMANDS`); listing them (``--help``) imports them all."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            importlib.import_module(f"{__package__}.{COMMANDS[cmd_name]}")
        return super().get_command(ctx, cmd_name)


def _fail(msg: str) -> None:
    one_line = msg.replace("\r", "\\r").replace("\n", "\\n")  # names may hold line breaks
    click.echo(f"peersync: error: {one_line}", err=True)
    sys.exit(EXIT_ERROR)


def handle_errors(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except peersync.SyncError as exc:
            _fail(str(exc))
        except KeyboardInterrupt:
            _fail("interrupted")

    return wrapper  # type: ignore[return-value]


timeout_option = click.option(
    "--timeout",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds to wait for another writer's lock.",
)


token_option = click.option(
    "--token",
    envvar="PEERSYNC_TOKEN",
    default=None,
    help="Bearer token for http(s):// peers (default: $PEERSYNC_TOKEN).",
)
ca_option = click.option(
    "--ca",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="CA certificates to verify https:// peers against (a private CA).",
)


def open_db(url: str, timeout: float, token: str | None = None, ca: str | None = None) -> peersync.Database:
    """``peersync.connect`` with the options that apply to ``url``'s kind:
    the lock timeout for a database here, token and CA for a served peer."""
    if scheme_of(url) in ("http", "https"):
        return peersync.connect(url, token=token, ca=ca)
    return peersync.connect(url, timeout=timeout)


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")


def policy_option(help: str) -> Callable[[Any], Any]:
    """``--policy``: a named conflict policy, last writer wins by default."""
    return click.option(
        "--policy",
        type=click.Choice([p.value for p in peersync.Policy]),
        default=peersync.Policy.LAST_WRITER_WINS.value,
        show_default=True,
        help=help,
    )


def flag(name: str, help: str) -> Callable[[Any], Any]:
    """An on/off option."""
    return click.option(name, is_flag=True, help=help)


def db_command(*options: Callable[[Any], Any], all_scopes: bool = False) -> Callable[[F], F]:
    """Register a subcommand over one database ``DB``: ``--scope`` (required,
    or optional meaning every scope with ``all_scopes``), then ``options``,
    then ``--timeout``; a :class:`~peersync.SyncError` becomes one line."""
    scope = (
        click.option("--scope", "-s", default=None, help="One scope (default: all).")
        if all_scopes
        else click.option("--scope", "-s", required=True, help="Scope name.")
    )

    def register(fn: F) -> F:
        wrapped = timeout_option(handle_errors(fn))
        for option in reversed(options):
            wrapped = option(wrapped)
        cli.command()(click.argument("db")(scope(wrapped)))
        return fn

    return register


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(peersync.__version__, prog_name="peersync")
def cli() -> None:
    """Peer-to-peer, multi-master sync of SQLite, PostgreSQL and MariaDB/MySQL
    databases, directly or over HTTP ('peersync serve').

    DB is a SQLite path or sqlite:///path, postgresql://user@host/db,
    mysql://user@host/db (or mariadb://), or http(s)://host:port of a
    served database. Errors print one line and exit 2.
    """


def main() -> None:
    """Entry point: click's own usage errors also become one line and exit 2."""
    try:
        cli.main(prog_name="peersync", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
        sys.exit(EXIT_ERROR)
    except click.UsageError as exc:
        # command_path is the whole chain ("peersync token add"), not the last name alone
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx and exc.ctx.command.name else ""
        _fail(exc.format_message().replace("\n", " ") + hint)
    except click.ClickException as exc:
        _fail(exc.format_message())
    except click.exceptions.Abort:
        _fail("aborted")


def names_lines(names: dict[str, Any]) -> list[str]:
    """A status's local names, one line per table: ``Album -> album (AlbumId -> album_id, ...)``."""
    lines = []
    for g, entry in sorted(names.items()):
        cols = ", ".join(f"{gc} -> {lc}" for gc, lc in entry.get("columns", {}).items())
        lines.append(f"{g} -> {entry['table']}" + (f" ({cols})" if cols else ""))
    return lines
