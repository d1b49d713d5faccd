"""Workflow commands: ``ims run`` (a task through the workflow) and ``ims workflows``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ims_kit.cli.base import ImsGroup, cli, echo_json, open_kit
from ims_kit.selector import STRATEGIES

_QUIET_KEYS = {"call_id", "signals", "rejected", "reason"}  # too long for a line (--json has them)


def _brief(context: dict[str, Any]) -> str:
    """A transition's context as ``key=value`` pairs, for one line of progress."""
    parts = [
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in context.items()
        if k not in _QUIET_KEYS and v is not None and not isinstance(v, dict | list)
    ]
    return f"  {', '.join(parts)}" if parts else ""


@cli.command()
@click.argument("prompt")
@click.option(
    "--strategy",
    metavar="|".join(STRATEGIES),
    help="How to rank candidate models. [env: IMS_STRATEGY, default cost]",
)
@click.option("--provider", help="Override the models' provider, e.g. 'simulated' to work offline.")
@click.option(
    "--validate",
    type=click.Choice(["nonempty", "json"]),
    default="nonempty",
    show_default=True,
    help="What an acceptable answer is.",
)
@click.option(
    "--schema",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A JSON schema file the answer must satisfy (type, required, properties, items, enum).",
)
@click.option(
    "--max-retries",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="How many other models to try when an answer fails validation.",
)
@click.option("--min-context", type=int, help="Minimum context window. [env: IMS_MIN_CONTEXT]")
@click.option("--vendor", "vendors", multiple=True, help="Only these vendors (repeatable).")
@click.option("--max-tokens", type=int, help="Cap on the answer's length, in tokens.")
@click.option("--json", "as_json", is_flag=True, help="Print the result and history as JSON.")
def run(
    prompt,
    strategy,
    provider,
    validate,
    schema,
    max_retries,
    min_context,
    vendors,
    max_tokens,
    as_json,
) -> None:
    """Run PROMPT ('-' reads stdin) as a task through the workflow, printing each state.

    Exits 1 with the reason when the workflow ends FAILED.
    """
    if prompt == "-":
        prompt = sys.stdin.read()
    check: Any = validate
    if schema is not None:
        try:
            check = json.loads(schema.read_text())
        except OSError as exc:
            raise click.ClickException(f"cannot read {schema}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise click.ClickException(f"{schema} is not JSON: {exc}") from None
    kit = open_kit()
    if not as_json:

        def show(event) -> None:
            p = event.payload
            detail = _brief(p.get("context") or {})
            click.echo(f"ims: {event.subject}: {p['target']} ({p['event']}){detail}", err=True)

        kit.events.subscribe(show, kind="workflow.state_changed")
    result = kit.run_task(
        prompt,
        strategy=strategy,
        validate=check,
        provider=provider,
        max_model_retries=max_retries,
        max_tokens=max_tokens,
        min_context_window=min_context,
        vendors=list(vendors),
    )
    if as_json:
        echo_json(result.to_dict())
        if not result.ok:
            sys.exit(1)
        return
    if not result.ok:
        raise click.ClickException(f"workflow {result.workflow_id} FAILED: {result.reason}")
    click.echo(result.answer.text)


@cli.group(cls=ImsGroup, invoke_without_command=True)
@click.option("--state", help="Only workflows in this state (e.g. FAILED, COMPLETED).")
@click.option(
    "--limit", type=click.IntRange(min=1), default=20, show_default=True, help="How many."
)
@click.option("--json", "as_json", is_flag=True, help="Print the workflows as JSON.")
@click.pass_context
def workflows(ctx: click.Context, state: str | None, limit: int, as_json: bool) -> None:
    """List recent workflows, newest first; `ims workflows show ID` prints one's history."""
    if ctx.invoked_subcommand is not None:
        return
    found = open_kit().workflows(state=state, limit=limit)
    if as_json:
        echo_json([w.to_dict() for w in found])
        return
    if not found:
        where = f" in state {state.upper()}" if state else ""
        click.echo(f"no workflows{where}; `ims run PROMPT` runs a task through one")
        return
    width = max(len("WORKFLOW"), *(len(w.workflow_id) for w in found))
    click.echo(f"{'WORKFLOW'.ljust(width)}  {'STATE':<15}  {'UPDATED':<19}  STEPS  MODEL / REASON")
    for w in found:
        ctx_ = w.context
        note = ctx_.get("reason") or ctx_.get("answered_by") or ctx_.get("model") or ""
        note = note if len(note) <= 70 else note[:67] + "..."
        updated = w.updated[:19].replace("T", " ")
        click.echo(
            f"{w.workflow_id.ljust(width)}  {w.state:<15}  {updated:<19}  {w.transitions:>5}  "
            f"{note}"
        )


@workflows.command("show")
@click.argument("workflow_id")
@click.option("--json", "as_json", is_flag=True, help="Print the workflow (to_dict) as JSON.")
def workflows_show(workflow_id: str, as_json: bool) -> None:
    """Print the history of workflow WORKFLOW_ID, one transition per line."""
    wf = open_kit().workflow(workflow_id, create=False)
    if as_json:
        echo_json(wf.to_dict())
        return
    history = wf.get_history()
    click.echo(
        f"workflow {wf.id}: {wf.state}, {len(history)} transitions,"
        f" created {wf.created[:19].replace('T', ' ')} UTC"
    )
    for t in history:
        when = t.ts[11:23]
        click.echo(f"{when}  {t.event:<19}  {t.source} -> {t.target}{_brief(t.context)}")
    if wf.state == "FAILED":
        click.echo(f"reason: {wf.context.get('reason')}")
