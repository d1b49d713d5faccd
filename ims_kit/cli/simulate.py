"""``ims simulate``: a seeded offline workload through the real call path (``ims_kit.simulate``)."""

from __future__ import annotations

import sys

import click

from ims_kit.cli.base import cli, echo_json, open_kit


@cli.command()
@click.option(
    "--requests",
    type=click.IntRange(min=1),
    default=300,
    show_default=True,
    help="How many requests to run.",
)
@click.option(
    "--faults",
    default="",
    help="Fault windows, comma-separated: MODEL:KIND@FIRST-LAST, e.g. "
    "'gemini-2.5-pro:overload@100-160' (MODEL '*' is any model; KIND overload, rate_limit, "
    "timeout, unknown, ...).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the workload.")
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    help="Requests per second in real time (default: as fast as possible, simulated clock).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def simulate(requests: int, faults: str, seed: int, rate: float | None, as_json: bool) -> None:
    """Run a realistic simulated workload (questions, documents, code) through selection,
    recovery, breakers and workflows, offline and without keys.

    Every row is marked provider 'simulated'. The same --seed on a fresh database gives the
    same run. Fault windows make circuits open and, after the window, close again; --rate
    spreads the calls over real time so the dashboard can be watched filling up.
    """
    from ims_kit.simulate import parse_faults
    from ims_kit.simulate import simulate as run

    parse_faults(faults)  # a bad spec is one line before anything starts
    kit = open_kit()
    with click.progressbar(length=requests, label="simulating", file=sys.stderr) as bar:
        report = run(
            kit,
            requests=requests,
            faults=faults,
            seed=seed,
            rate=rate,
            progress=lambda outcome: bar.update(1),
        )
    if as_json:
        echo_json(report.to_dict())
        return
    clock = (
        f" (spread over {report.simulated_seconds / 3600:.1f} simulated hours)"
        if report.simulated_seconds is not None
        else ""
    )
    click.echo(
        f"{report.requests} requests in {report.seconds:.1f} s{clock}: {report.completed}"
        f" completed, {report.failed} failed; {report.attempts} attempts"
        f" ({report.failed_attempts} failed, {report.retries} retries,"
        f" {report.fallbacks} fallbacks)"
    )
    unpriced = f" (+{report.unpriced_attempts} unpriced)" if report.unpriced_attempts else ""
    click.echo(f"simulated cost: ${report.cost_usd:.4f}{unpriced}")
    for model_id, steps in report.circuits.items():
        opened, probes = steps.count("opened"), steps.count("half_open")
        now = {"opened": "open", "half_open": "half-open"}.get(steps[-1], steps[-1])
        click.echo(f"circuit {model_id}: opened {opened}x, {probes} probes, {now} at the end")
    if report.faults and not report.circuits:
        click.echo(
            "no circuit opened: the faulty models were not chosen often enough, or their "
            "faults (invalid_request, context_overflow) do not count against a model"
        )
    click.echo(f"database: {report.database}; `streamlit run app.py` to see it")
