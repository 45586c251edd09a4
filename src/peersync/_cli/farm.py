"""``peersync farm CONFIG.toml``: keep a farm's servers in sync (peersync.farm)."""

from __future__ import annotations

import json
import signal
import sys
import threading
from types import FrameType

import click

from peersync.farm import Farm, SessionEvent, load_config

from .app import cli, handle_errors

EXIT_FAILED = 1  # --once with a failed session, or sessions left in hand; a bad CONFIG is 2


@cli.command()
@click.argument("config")
@click.option("--once", is_flag=True, help="One round of every link, then exit (1 if a session failed).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per session instead of a log line.")
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Seconds the sessions in hand may take to finish after SIGINT or SIGTERM.",
)
@handle_errors
def farm(config: str, once: bool, as_json: bool, grace: float) -> None:
    """Keep the servers named in CONFIG (a TOML file) in sync over their links,
    each link in its own worker, every interval; a server that is down is
    retried with a growing wait. Prints a line per session (--json: an object).

    SIGINT or SIGTERM: no new session starts, those in hand finish (up to
    --grace seconds), then exit 0; a second signal leaves them at once (what
    they committed stays; the next run sends the rest) and exits 1.
    A bad CONFIG: one line on stderr, exit 2.
    """
    cfg = load_config(config)

    def emit(event: SessionEvent) -> None:  # the farm calls it one event at a time
        click.echo(json.dumps(event.to_dict()) if as_json else event.line())
        sys.stdout.flush()

    runner = Farm(cfg, on_event=emit)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if runner.stopping:
            click.echo("peersync: farm: leaving the sessions in hand", err=True)
            runner.abandon()
        else:
            click.echo("peersync: farm: stopping after the sessions in hand (signal again to leave them)", err=True)
            runner.stop()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        run = runner.run(once=once, grace=grace)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if run.abandoned:
        click.echo(f"peersync: error: {run.abandoned} sessions left in hand (their committed batches stay)", err=True)
        sys.exit(EXIT_FAILED)
    if once and run.failed:
        click.echo(f"peersync: error: {run.failed} of {run.sessions} sessions failed (see the log)", err=True)
        sys.exit(EXIT_FAILED)
