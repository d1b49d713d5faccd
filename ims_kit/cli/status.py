"""``ims status``: health, database, registry, usage, circuits and events; live, once or JSON."""

from __future__ import annotations

import os
import sys
import time

import click

from ims_kit.cli.base import cli, echo_json

CLEAR = "\x1b[H\x1b[2J"  # cursor home, clear the screen


@cli.command()
@click.option("--once", is_flag=True, help="Print one snapshot and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print one snapshot's figures as JSON.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Seconds between refreshes of the live view.",
)
def status(once: bool, as_json: bool, interval: float) -> None:
    """Show health, database, registry, usage, latency, circuits, events and provider keys.

    Refreshes in place every --interval seconds until Ctrl-C; --once prints one snapshot,
    --json its figures. Reads the database without creating, migrating or locking it.
    Colour when stdout is a terminal (and NO_COLOR is not set). With --once or --json the
    exit status is the health: 0 ok, 1 degraded, 2 down.
    """
    from ims_kit import health
    from ims_kit.status_text import render

    if as_json or once:
        snap = health.read()
        if as_json:
            echo_json(snap)
        else:
            tty = sys.stdout.isatty()
            click.echo(render(snap, color=tty and not os.environ.get("NO_COLOR")))
        sys.exit(health.exit_code(snap))
    tty = sys.stdout.isatty()
    color = tty and not os.environ.get("NO_COLOR")
    try:
        while True:
            text = render(health.read(), color=color)
            footer = f"refreshing every {interval:g}s; Ctrl-C to quit"
            if tty:
                click.echo(f"{CLEAR}{text}\n\n{footer}", nl=False)
            else:
                click.echo(f"{text}\n")
            time.sleep(interval)
    except KeyboardInterrupt:
        click.echo("")  # leave the prompt on a line of its own
