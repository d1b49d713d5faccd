"""``ims export otel``: what the file already holds, sent to the team's tracing stack."""

from __future__ import annotations

import re
from datetime import timedelta

import click

from ims_kit.cli.base import cli, open_kit

_SPAN = re.compile(r"^(\d+)\s*([dhm])$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def parse_since(text: str | None):
    """``7d``, ``12h``, ``30m`` (back from now) or an ISO-8601 time; None: everything."""
    if text is None:
        return None
    m = _SPAN.match(text.strip().lower())
    if m:
        return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    return text  # ISO-8601; a bad one is a one-line error from the usage filter


@cli.group()
def export() -> None:
    """Send what the database holds elsewhere."""


@export.command("otel")
@click.option("--since", help="Only what happened since: 7d, 12h, 30m or an ISO-8601 time.")
def export_otel(since) -> None:
    """Replay usage and workflows as OpenTelemetry spans (OTLP/HTTP, configured by the
    standard OTEL_EXPORTER_OTLP_* variables), for a team to load a person's history."""
    from ims_kit import telemetry

    sent = telemetry.start().replay(open_kit(), parse_since(since))
    click.echo(
        f"sent {sent['requests']:,} requests ({sent['attempts']:,} attempts) and"
        f" {sent['workflows']:,} workflows as spans"
    )
