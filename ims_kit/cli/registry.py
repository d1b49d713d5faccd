"""Registry commands: ``ims init``, ``ims models``, ``ims prices``, ``ims metrics``."""

from __future__ import annotations

from pathlib import Path

import click

from ims_kit.cli.base import ImsGroup, cli, echo_json, open_kit


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def init(as_json: bool) -> None:
    """Create the database and seed the registry with the curated catalogue (idempotent)."""
    kit = open_kit(create=True)
    result = kit.registry.seed()
    if as_json:
        echo_json(
            {"database": kit.path, "added": len(result.added), "skipped": len(result.skipped)}
        )
        return
    click.echo(f"database: {kit.path}")
    click.echo(f"models: {len(result.added)} added, {len(result.skipped)} already present")


@cli.group(cls=ImsGroup, invoke_without_command=True)
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
    registry = open_kit().registry
    if len(registry) == 0:
        click.echo("ims: the registry is empty: run `ims init` to seed it", err=True)
    found = registry.filter(
        vendor=vendor,
        min_context_window=min_context,
        capabilities=capabilities or None,
        active=None if include_inactive else True,
    )
    if as_json:
        echo_json([m.to_dict() for m in found])
    else:
        click.echo(str(found))


@models.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def models_import(file: Path, as_json: bool) -> None:
    """Add or update models from FILE, a JSON file shaped like data/models.json (all or nothing)."""
    result = open_kit().registry.import_file(file)
    summary = {
        "added": list(result.added),
        "updated": list(result.updated),
        "unchanged": list(result.skipped),
    }
    if as_json:
        echo_json(summary)
    else:
        click.echo(", ".join(f"{len(v)} {k}" for k, v in summary.items()))


@cli.group(cls=ImsGroup)
def prices() -> None:
    """Model prices from the genai-prices catalogue."""


@prices.command("sync")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def prices_sync(as_json: bool) -> None:
    """Update registered models' prices from the installed genai-prices snapshot."""
    report = open_kit().registry.refresh_prices()
    if as_json:
        echo_json(
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


@prices.command("import")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def prices_import(as_json: bool) -> None:
    """Register every chat model genai-prices knows (about two thousand), inactive and priced."""
    result = open_kit().registry.import_catalog()
    if as_json:
        echo_json({"added": len(result.added), "skipped": len(result.skipped)})
    else:
        click.echo(
            f"{len(result.added)} models added (inactive), {len(result.skipped)} skipped;"
            " `ims models --all` lists them"
        )


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def metrics(as_json: bool) -> None:
    """Registry and query counters (the seed's /metrics figures)."""
    figures = open_kit().metrics()
    if as_json:
        echo_json(figures)
        return
    width = max(map(len, figures))
    for key, value in figures.items():
        click.echo(f"{key.ljust(width)}  {value}")
