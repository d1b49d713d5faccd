"""The ``ims`` command. Errors print one line on stderr and exit non-zero, never a traceback."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ims_kit.errors import ImsError


class _Group(click.Group):
    """A click group that turns every ImsError into a one-line message and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ImsError as exc:
            raise click.ClickException(str(exc)) from None


def _kit():
    from ims_kit.kit import Kit

    return Kit()


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


@click.group(cls=_Group)
@click.version_option(package_name="ims_kit")
def cli() -> None:
    """ims_kit: choose, call and watch LLM models.

    The database is IMS_DB if set, else ~/.local/share/ims_kit/ims.db.
    """


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def init(as_json: bool) -> None:
    """Create the database and seed the registry with the curated catalogue (idempotent)."""
    kit = _kit()
    result = kit.registry.seed()
    if as_json:
        _echo_json(
            {"database": kit.path, "added": len(result.added), "skipped": len(result.skipped)}
        )
        return
    click.echo(f"database: {kit.path}")
    click.echo(f"models: {len(result.added)} added, {len(result.skipped)} already present")


@cli.group(cls=_Group, invoke_without_command=True)
@click.option("--vendor", help="Only this vendor (Google, OpenAI, Anthropic, Meta, ...).")
@click.option("--min-context", type=int, help="Only models with at least this context window.")
@click.option(
    "--capability",
    "capabilities",
    multiple=True,
    help="Only models with this capability (repeatable: all are required).",
)
@click.option("--all", "include_inactive", is_flag=True, help="Include inactive models.")
@click.option("--json", "as_json", is_flag=True, help="Print the models as JSON.")
@click.pass_context
def models(
    ctx: click.Context,
    vendor: str | None,
    min_context: int | None,
    capabilities: tuple[str, ...],
    include_inactive: bool,
    as_json: bool,
) -> None:
    """List registered models (active ones unless --all); `ims models import FILE` adds your own."""
    if ctx.invoked_subcommand is not None:
        return
    found = _kit().registry.filter(
        vendor=vendor,
        min_context_window=min_context,
        capabilities=capabilities or None,
        active=None if include_inactive else True,
    )
    if as_json:
        _echo_json([m.to_dict() for m in found])
    else:
        click.echo(str(found))


@models.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def models_import(file: Path, as_json: bool) -> None:
    """Add or update models from FILE, a JSON file shaped like data/models.json (all or nothing)."""
    result = _kit().registry.import_file(file)
    summary = {
        "added": list(result.added),
        "updated": list(result.updated),
        "unchanged": list(result.skipped),
    }
    if as_json:
        _echo_json(summary)
    else:
        click.echo(", ".join(f"{len(v)} {k}" for k, v in summary.items()))


@cli.group(cls=_Group)
def prices() -> None:
    """Model prices from the genai-prices catalogue."""


@prices.command("sync")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def prices_sync(as_json: bool) -> None:
    """Update registered models' prices from the installed genai-prices snapshot."""
    report = _kit().registry.refresh_prices()
    if as_json:
        _echo_json(
            {
                "changed": [
                    {"model_id": c.model_id, "old": c.old, "new": c.new, "source": c.source}
                    for c in report.changed
                ],
                "unchanged": list(report.unchanged),
                "unknown": list(report.unknown),
            }
        )
        return
    for c in report.changed:
        click.echo(f"{c.model_id}: {c.old[0]}/{c.old[1]} -> {c.new[0]}/{c.new[1]} $/M ({c.source})")
    click.echo(
        f"{len(report.changed)} changed, {len(report.unchanged)} unchanged, "
        f"{len(report.unknown)} not in genai-prices (left as they were)"
    )


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def metrics(as_json: bool) -> None:
    """Registry and query counters (the seed's /metrics figures)."""
    figures = _kit().metrics()
    if as_json:
        _echo_json(figures)
        return
    width = max(map(len, figures))
    for key, value in figures.items():
        click.echo(f"{key.ljust(width)}  {value}")


def main() -> None:
    """Entry point of the ``ims`` console script."""
    try:
        cli(prog_name="ims")
    except KeyboardInterrupt:
        sys.exit(130)
