"""Commands that choose and call models: ``ims recommend`` and ``ims ask``."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import click

from ims_kit.cli.base import cli, echo_json, open_kit
from ims_kit.errors import StreamInterrupted
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


def routing_options(command):
    """Where strategy learned puts its threshold: a quality target or a share of calls."""
    command = click.option(
        "--strong-share",
        type=float,
        help="Strategy learned: send this share (0-1) of prompts to the strong model.",
    )(command)
    return click.option(
        "--target-quality",
        type=float,
        help="Strategy learned: the share of the strong model's quality to reach (default 0.95).",
    )(command)


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
    help="cost (default), performance, balanced, latency, auto or learned. [env: IMS_STRATEGY]",
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
@routing_options
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
    target_quality,
    strong_share,
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
        target_quality=target_quality,
        strong_share=strong_share,
    )
    if as_json:
        echo_json(rec.to_dict())
    else:
        click.echo(str(rec))


def generation_options(command):
    """The options every calling command takes: the system prompt and the generation options."""
    for option in reversed(
        (
            click.option("--system", help="The system prompt."),
            click.option("--temperature", type=float, help="Sampling temperature, 0 to 2."),
            click.option("--top-p", type=float, help="Nucleus sampling, 0 to 1."),
            click.option("--max-tokens", type=int, help="Cap on the answer's length, in tokens."),
            click.option("--stop", multiple=True, help="A stop sequence (repeatable)."),
            click.option("--seed", type=int, help="Seed, for vendors that take one."),
        )
    ):
        command = option(command)
    return command


def option_values(system, temperature, top_p, max_tokens, stop, seed) -> dict:
    """The keyword arguments of ``kit.ask`` for the generation options that were given."""
    return {
        "system": system,
        "temperature": temperature,
        "top_p": top_p,
        "max_tokens": max_tokens,
        "stop": list(stop) or None,
        "seed": seed,
    }


def read_schema(path: Path | None) -> dict | None:
    """The JSON Schema in ``path`` ('-' reads stdin), or a one-line error."""
    if path is None:
        return None
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text()
    except OSError as exc:
        raise click.ClickException(f"cannot read {path}: {exc.strerror}") from None
    try:
        schema = json.loads(text)
    except ValueError as exc:
        raise click.ClickException(f"{path}: not JSON ({exc})") from None
    if not isinstance(schema, dict):
        kind = type(schema).__name__
        raise click.ClickException(f"{path}: a JSON Schema is an object, got {kind}")
    return schema


def notices(answer) -> None:
    """What recovery did and which options were not sent, on stderr."""
    for a in answer.attempts:
        if a.action in ("fallback", "retry", "truncate", "shrink"):
            click.echo(f"ims: {a.model_id}: {a.error_kind}: {a.action} ({a.detail})", err=True)
    for name, why in answer.dropped_options.items():
        click.echo(f"ims: {answer.model_id}: {name} not sent: {why}", err=True)


def accounting(answer) -> str:
    """One line: who answered, tokens, cost, latency (and time to first token)."""
    cost = "unpriced" if answer.cost_usd is None else f"${answer.cost_usd:.6f}"
    ttft = f" (first token {answer.ttft_ms:.0f} ms)" if answer.ttft_ms is not None else ""
    return (
        f"{answer.model_id} ({answer.provider}), {answer.tokens_in} in / "
        f"{answer.tokens_out} out tokens, {cost}, {answer.latency_ms:.0f} ms{ttft}"
    )


def print_stream(stream) -> Any:
    """Print a stream's pieces as they arrive; Ctrl-C stops it (the partial call is logged).
    Returns its Answer, or None when stopped."""
    try:
        for piece in stream:
            click.echo(piece, nl=False)
    except KeyboardInterrupt:
        stream.close()
        click.echo("")
        click.echo("ims: stopped; the partial call is logged", err=True)
        return None
    except StreamInterrupted as exc:
        click.echo("")
        raise click.ClickException(str(exc)) from None
    click.echo("")
    return stream.answer


def model_options(command):
    """Which model answers: --model (else the selector, by --strategy), --fallback, --provider."""
    for option in reversed(
        (
            click.option("--model", help="Call this model (from `ims models`), not the choice."),
            click.option(
                "--fallback", "fallbacks", multiple=True, help="Model to fall back to (in order)."
            ),
            click.option(
                "--provider",
                help="Override the models' provider, e.g. 'simulated' to work offline, no key.",
            ),
            click.option(
                "--strategy",
                metavar="|".join(STRATEGIES),
                help="How to choose the model when --model is not given. [env: IMS_STRATEGY]",
            ),
        )
    ):
        command = option(command)
    return command


@cli.command()
@click.argument("prompt")
@model_options
@click.option("--min-context", type=int, help="Minimum context window. [env: IMS_MIN_CONTEXT]")
@click.option("--vendor", "vendors", multiple=True, help="Only these vendors (repeatable).")
@routing_options
@generation_options
@click.option(
    "--json-schema",
    "schema_file",
    type=click.Path(path_type=Path),
    help="Answer as JSON valid against this JSON Schema file; prints the JSON.",
)
@click.option("--stream", is_flag=True, help="Print the answer as it arrives (Ctrl-C stops).")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the answer and its accounting as JSON."
)
def ask(
    prompt,
    model,
    fallbacks,
    provider,
    strategy,
    min_context,
    vendors,
    target_quality,
    strong_share,
    system,
    temperature,
    top_p,
    max_tokens,
    stop,
    seed,
    schema_file,
    stream,
    as_json,
) -> None:
    """Ask PROMPT ('-' reads stdin): select a model, call it with recovery, log the cost."""
    if prompt == "-":
        prompt = sys.stdin.read()
    if stream and as_json:
        raise click.UsageError("--stream prints the text as it comes; --json prints it at the end")
    constraints = (
        {}
        if model
        else {
            "strategy": strategy,
            "min_context_window": min_context,
            "vendors": list(vendors),
            "target_quality": target_quality,
            "strong_share": strong_share,
        }
    )
    schema = read_schema(schema_file)
    kit = open_kit()
    call = dict(
        model=model,
        fallbacks=list(fallbacks) or None,
        provider=provider,
        json_schema=schema,
        **option_values(system, temperature, top_p, max_tokens, stop, seed),
        **constraints,
    )
    if stream:
        answer = print_stream(kit.stream(prompt, **call))
        if answer is None:
            sys.exit(130)
        notices(answer)
        click.echo(f"ims: {accounting(answer)}", err=True)
        return
    answer = kit.ask(prompt, **call)
    if as_json:
        echo_json(dataclasses.asdict(answer))
        return
    notices(answer)
    click.echo(answer.text if schema is None else json.dumps(answer.data, indent=2))
    click.echo(f"ims: {accounting(answer)}", err=True)
