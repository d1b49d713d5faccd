"""The ``ims`` command. Errors print one line on stderr and exit non-zero, never a traceback."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import click

from ims_kit.errors import ImsError
from ims_kit.selector import STRATEGIES


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


@prices.command("import")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def prices_import(as_json: bool) -> None:
    """Register every chat model genai-prices knows (about two thousand), inactive and priced."""
    result = _kit().registry.import_catalog()
    if as_json:
        _echo_json({"added": len(result.added), "skipped": len(result.skipped)})
    else:
        click.echo(
            f"{len(result.added)} models added (inactive), {len(result.skipped)} skipped;"
            " `ims models --all` lists them"
        )


def _read_prompt(prompt: str | None, prompt_file: Path | None) -> str:
    if prompt is not None and prompt_file is not None:
        raise click.UsageError("give --prompt or --prompt-file, not both")
    if prompt_file is not None:
        try:
            return sys.stdin.read() if str(prompt_file) == "-" else prompt_file.read_text()
        except OSError as exc:
            raise click.ClickException(f"cannot read {prompt_file}: {exc.strerror}") from None
    return prompt or ""


@cli.command()
@click.option("--prompt", help="The prompt to place (its size and content inform the choice).")
@click.option(
    "--prompt-file",
    type=click.Path(path_type=Path),
    help="Read the prompt from a file ('-' for stdin).",
)
@click.option(
    "--strategy",
    type=click.Choice(list(STRATEGIES)),
    envvar="IMS_STRATEGY",
    help="cost (default), performance, balanced, latency or auto. [env: IMS_STRATEGY]",
)
@click.option(
    "--min-context", type=int, help="Minimum context window. [env: IMS_MIN_CONTEXT, default 10000]"
)
@click.option("--vendor", "vendors", multiple=True, help="Only these vendors (repeatable).")
@click.option("--exclude-vendor", "exclude_vendors", multiple=True, help="Never these vendors.")
@click.option(
    "--capability", "capabilities", multiple=True, help="Required capability (repeatable)."
)
@click.option("--max-cost", type=float, help="Maximum estimated cost of the call, in USD.")
@click.option(
    "--output-tokens",
    type=int,
    default=500,
    show_default=True,
    help="Expected answer length, for cost estimates.",
)
@click.option("--include-inactive", is_flag=True, help="Consider inactive models too.")
@click.option("--json", "as_json", is_flag=True, help="Print the recommendation as JSON.")
def recommend(
    prompt,
    prompt_file,
    strategy,
    min_context,
    vendors,
    exclude_vendors,
    capabilities,
    max_cost,
    output_tokens,
    include_inactive,
    as_json,
) -> None:
    """Recommend a model for a prompt, with every candidate and the reasons."""
    rec = _kit().recommend(
        _read_prompt(prompt, prompt_file),
        strategy=strategy,
        min_context_window=min_context,
        vendors=list(vendors),
        exclude_vendors=list(exclude_vendors),
        capabilities=list(capabilities),
        max_cost_usd=max_cost,
        expected_output_tokens=output_tokens,
        include_inactive=include_inactive,
    )
    if as_json:
        _echo_json(rec.to_dict())
    else:
        click.echo(str(rec))


@cli.command()
@click.argument("prompt")
@click.option("--model", help="Call this model (from `ims models`) instead of recommending one.")
@click.option(
    "--fallback", "fallbacks", multiple=True, help="Model to fall back to (repeatable, in order)."
)
@click.option(
    "--provider",
    help="Override the models' provider, e.g. 'simulated' to work offline with no key.",
)
@click.option(
    "--strategy",
    type=click.Choice(list(STRATEGIES)),
    envvar="IMS_STRATEGY",
    help="How to choose the model when --model is not given. [env: IMS_STRATEGY]",
)
@click.option("--min-context", type=int, help="Minimum context window. [env: IMS_MIN_CONTEXT]")
@click.option("--vendor", "vendors", multiple=True, help="Only these vendors (repeatable).")
@click.option("--max-tokens", type=int, help="Cap on the answer's length, in tokens.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the answer and its accounting as JSON."
)
def ask(
    prompt, model, fallbacks, provider, strategy, min_context, vendors, max_tokens, as_json
) -> None:
    """Ask PROMPT ('-' reads stdin): select a model, call it with recovery, log the cost."""
    if prompt == "-":
        prompt = sys.stdin.read()
    constraints = (
        {}
        if model
        else {"strategy": strategy, "min_context_window": min_context, "vendors": list(vendors)}
    )
    answer = _kit().ask(
        prompt,
        model=model,
        fallbacks=list(fallbacks) or None,
        provider=provider,
        max_tokens=max_tokens,
        **constraints,
    )
    if as_json:
        data = dataclasses.asdict(answer)
        _echo_json(data)
        return
    for a in answer.attempts:
        if a.action in ("fallback", "retry", "truncate"):
            click.echo(f"ims: {a.model_id}: {a.error_kind}: {a.action} ({a.detail})", err=True)
    click.echo(answer.text)
    cost = "unpriced" if answer.cost_usd is None else f"${answer.cost_usd:.6f}"
    click.echo(
        f"ims: {answer.model_id} ({answer.provider}), {answer.tokens_in} in / "
        f"{answer.tokens_out} out tokens, {cost}, {answer.latency_ms:.0f} ms",
        err=True,
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
