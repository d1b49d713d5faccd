"""Commands that choose and call models: ``ims recommend`` and ``ims ask``."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import click

from ims_kit.cli.base import cli, echo_json, open_kit
from ims_kit.selector import STRATEGIES


def _read_prompt(prompt: str | None, prompt_file: Path | None) -> str:
    if prompt is not None and prompt_file is not None:
        raise click.UsageError("give --prompt or --prompt-file, not both")
    if prompt_file is not None:
        try:
            return sys.stdin.read() if str(prompt_file) == "-" else prompt_file.read_text()
        except OSError as exc:
            raise click.ClickException(f"cannot read {prompt_file}: {exc.strerror}") from None
    if prompt is None:
        raise click.UsageError("give the prompt to place: --prompt TEXT or --prompt-file FILE")
    return prompt


@cli.command()
@click.option("--prompt", help="The prompt to place (its size and content inform the choice).")
@click.option(
    "--prompt-file",
    type=click.Path(path_type=Path),
    help="Read the prompt from a file ('-' for stdin).",
)
@click.option(
    "--strategy",
    metavar="|".join(STRATEGIES),
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
    rec = open_kit().recommend(
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
        echo_json(rec.to_dict())
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
    metavar="|".join(STRATEGIES),
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
    answer = open_kit().ask(
        prompt,
        model=model,
        fallbacks=list(fallbacks) or None,
        provider=provider,
        max_tokens=max_tokens,
        **constraints,
    )
    if as_json:
        data = dataclasses.asdict(answer)
        echo_json(data)
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
