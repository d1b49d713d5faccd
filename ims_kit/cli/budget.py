"""``ims budget``: spending caps that hold across threads and processes."""

from __future__ import annotations

import click

from ims_kit.budgets import PERIODS
from ims_kit.cli.base import cli, echo_json, open_kit
from ims_kit.formatting import money, text_table, when


@cli.group()
def budget() -> None:
    """Cap what calls may cost: per day, week, month (UTC calendar) or in total.

    A call whose worst case (its prompt and the longest answer allowed) does not fit is
    refused before it is sent.
    """


@budget.command("set")
@click.argument("limit_usd", type=float)
@click.option("--period", type=click.Choice(PERIODS), default="day", show_default=True)
@click.option("--vendor", help="Only this vendor's calls (e.g. OpenAI).")
@click.option("--model", help="Only this model's calls.")
@click.option("--warn-at", type=float, help="Emit budget.warning at this share (e.g. 0.8).")
@click.option("--allow-unpriced", is_flag=True, help="Let unpriced models run under it.")
@click.option("--simulated", is_flag=True, help="Cap simulated calls instead of real ones.")
def set_budget(limit_usd, period, vendor, model, warn_at, allow_unpriced, simulated) -> None:
    """Cap spending at LIMIT_USD (a budget of the same scope and period is updated)."""
    kit = open_kit()
    if model is not None:
        kit.registry.lookup(model)  # a typo must not create a budget that covers nothing
    if vendor is not None:
        known = {v.lower(): v for v in kit.registry.count_by_vendor()}
        if vendor.lower() not in known:
            raise click.ClickException(
                f"unknown vendor {vendor!r}; known: {', '.join(sorted(known.values()))}"
            )
        vendor = known[vendor.lower()]
    b = kit.budgets.set(
        limit_usd,
        period=period,
        vendor=vendor,
        model=model,
        warn_at=warn_at,
        allow_unpriced=allow_unpriced,
        simulated=simulated,
    )
    click.echo(f"{b.label()} set")


@budget.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the budgets as JSON.")
def list_budgets(as_json) -> None:
    """Every budget: limit, spent, reserved, left, period and when it resets."""
    statuses = open_kit().budgets.status()
    if as_json:
        echo_json([s.to_dict() for s in statuses])
        return
    if not statuses:
        click.echo("no budget: `ims budget set 5 --period day` caps real spending at $5 a day")
        return
    rows = [
        {
            "ID": s.id,
            "SCOPE": s.scope,
            "PERIOD": s.period,
            "LIMIT": money(s.limit_usd),
            "SPENT": money(s.spent_usd),
            "RESERVED": money(s.reserved_usd),
            "LEFT": money(s.left_usd),
            "RESETS": when(s.resets_at) or "never",
        }
        for s in statuses
    ]
    click.echo(text_table(rows))


@budget.command("rm")
@click.argument("budget_id", type=int)
def remove_budget(budget_id) -> None:
    """Remove budget BUDGET_ID (from `ims budget list`)."""
    open_kit().budgets.remove(budget_id)
    click.echo(f"budget #{budget_id} removed")
