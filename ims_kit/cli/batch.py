"""``ims batch FILE``: every prompt of a JSONL file through the call path; a rerun resumes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ims_kit.cli.base import cli, open_kit
from ims_kit.cli.calls import generation_options, model_options, option_values, read_schema
from ims_kit.records import Answer


def read_items(path: Path) -> list:
    """The prompts of a JSONL file ('-' reads stdin): each line a JSON string, or an object
    with "prompt" or "messages" (and "system", "id"); blank lines are skipped."""
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text()
    except OSError as exc:
        raise click.ClickException(f"cannot read {path}: {exc.strerror}") from None
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(json.loads(line))
        except ValueError as exc:
            raise click.ClickException(f"{path}:{number}: not JSON ({exc.msg})") from None
    if not items:
        raise click.ClickException(f"{path}: no prompt in it (one JSON value per line)")
    return items


def result_line(item: int, key, outcome) -> dict:
    """One output line: the answer's text and accounting, or the error, or not run."""
    if isinstance(outcome, Answer):
        a = outcome
        return {
            "item": item, "id": key, "ok": True, "text": a.text, "data": a.data,
            "model_id": a.model_id, "tokens_in": a.tokens_in, "tokens_out": a.tokens_out,
            "cost_usd": a.cost_usd, "latency_ms": round(a.latency_ms, 1), "call_id": a.call_id,
        }  # fmt: skip
    error = None if outcome is None else f"{type(outcome).__name__}: {outcome}"
    return {"item": item, "id": key, "ok": False, "error": error or "not run"}


@cli.command()
@click.argument("file", type=click.Path(path_type=Path))
@model_options
@generation_options
@click.option("--json-schema", "schema_file", type=click.Path(path_type=Path),
              help="Every answer as JSON valid against this JSON Schema file.")  # fmt: skip
@click.option("--concurrency", type=int, default=8, show_default=True, help="Calls at once.")
@click.option("--out", type=click.Path(path_type=Path), help="Write results here (JSONL).")
@click.option("--name", help="The batch's name (default: the file's path): reruns resume it.")
@click.option("--restart", is_flag=True, help="Forget the stored answers and ask everything.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def batch(
    file, model, fallbacks, provider, strategy, system, temperature, top_p, max_tokens, stop,
    seed, schema_file, concurrency, out, name, restart, no_progress,
):  # fmt: skip
    """Ask every prompt of FILE (JSONL), CONCURRENCY at a time; results in input order.

    Each line is a JSON string or an object with "prompt" or "messages" (and "system", "id").
    Answers are kept under the batch's name, so running the same command again sends only the
    prompts without an answer. Exit 0 when all are answered, 1 when some failed or a budget
    stopped the batch, 130 on Ctrl-C (what finished is kept).
    """
    items = read_items(file)
    schema = read_schema(schema_file)
    kit = open_kit()
    name = name or f"file:{file.resolve()}" if str(file) != "-" else name
    if restart and name:
        kit.batches.forget(name)
    call = dict(
        model=model, fallbacks=list(fallbacks) or None, provider=provider, json_schema=schema,
        **option_values(system, temperature, top_p, max_tokens, stop, seed),
    )  # fmt: skip
    if model is None:
        call["strategy"] = strategy
    result = kit.map(
        items, concurrency=concurrency, batch=name, progress=False if no_progress else None, **call
    )
    lines = [
        json.dumps(result_line(i, k, r), default=str)
        for i, (k, r) in enumerate(zip(result.ids, result))
    ]
    if out is not None:
        out.write_text("\n".join(lines) + "\n")
    else:
        click.echo("\n".join(lines))
    click.echo(f"ims: {result.describe()}", err=True)
    if result.stopped and result.stopped.startswith("interrupted"):
        sys.exit(130)
    if result.errors or result.not_run:
        sys.exit(1)
