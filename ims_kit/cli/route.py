"""Learned routing commands: ``ims route train`` and ``ims route eval``."""

from __future__ import annotations

import warnings
from pathlib import Path

import click

from ims_kit.cli.base import ImsGroup, cli, echo_json, open_kit
from ims_kit.errors import InvalidInputError


@cli.group(cls=ImsGroup)
def route() -> None:
    """Train and evaluate learned routers (which prompts need the strong model)."""


def _load(router: str):
    from ims_kit.routing import default_router, load_router

    return default_router() if router == "default" else load_router(router)


@route.command("train")
@click.argument("data", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the router file (JSON).",
)
@click.option(
    "--folds",
    type=click.IntRange(min=2),
    default=5,
    show_default=True,
    help="Folds for the out-of-fold scores that calibrate thresholds.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the fold split.")
@click.option(
    "--from-history",
    is_flag=True,
    help="Train on your own judged calls (kit.feedback, workflow validations) instead of DATA.",
)
@click.option("--strong", help="With --from-history: the strong model's id.")
@click.option("--weak", help="With --from-history: the cheap model's id.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def route_train(
    data: Path | None,
    out: Path,
    folds: int,
    seed: int,
    from_history: bool,
    strong: str | None,
    weak: str | None,
    as_json: bool,
) -> None:
    """Train a router on DATA.jsonl (one object a line: prompt, strong_correct, weak_correct),
    or with --from-history on the prompts both --strong and --weak answered and you judged."""
    from ims_kit.routing import train_router

    rows, metadata = _training_rows(data, from_history, strong, weak)
    with warnings.catch_warnings():  # said below as one line each, not as Python warnings
        warnings.simplefilter("ignore", UserWarning)
        router = train_router(rows, folds=folds, seed=seed, metadata=metadata)
    path = router.save(out)
    summary = {
        "router": str(path),
        "bytes": path.stat().st_size,
        "rows": router.metadata["rows"],
        "train_seconds": router.metadata["train_seconds"],
        "out_of_fold": router.metadata["out_of_fold"],
        "threshold_at_95_quality": router.threshold_for(target_quality=0.95),
        "warnings": router.metadata["warnings"],
    }
    for warning in summary["warnings"]:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        echo_json(summary)
        return
    oof = summary["out_of_fold"]
    click.echo(f"router: {path} ({summary['bytes'] / 1e6:.2f} MB)")
    click.echo(f"trained on {summary['rows']} prompts in {summary['train_seconds']:.1f} s")
    click.echo(
        f"out of fold: CPT(50%) {oof['cpt50']:.2f}%, CPT(80%) {oof['cpt80']:.2f}%,"
        f" APGR {oof['apgr']:.3f}, {oof['strong_share_at_95']:.2f}% strong for 95% quality"
    )
    click.echo(f"threshold for 95% quality: {summary['threshold_at_95_quality']:.4f}")


def _training_rows(data, from_history, strong, weak) -> tuple[list, dict]:
    """The labelled rows and what they were, from a file or from the usage log's verdicts."""
    from ims_kit.routing import read_jsonl

    if from_history:
        if data is not None:
            raise InvalidInputError("give DATA.jsonl or --from-history, not both")
        if not strong or not weak or strong == weak:
            raise InvalidInputError("--from-history needs --strong and --weak, two model ids")
        rows = open_kit().verdicts.training_rows(strong, weak)
        if not rows:
            raise InvalidInputError(
                f"no prompt in your history has a verdict on both {strong} and {weak}:"
                " judge answers with kit.feedback(call_id, good=...) first"
            )
        return rows, {
            "trained_on": f"your history: {len(rows)} prompts judged on both models",
            "strong_model": strong,
            "weak_model": weak,
        }
    if strong or weak:
        raise InvalidInputError("--strong and --weak go with --from-history")
    if data is None:
        raise InvalidInputError(
            "ims route train needs DATA.jsonl (the labelled prompts) or --from-history"
        )
    return read_jsonl(data), {"trained_on": data.name}


@route.command("eval")
@click.argument("router")
@click.argument("data", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--bootstrap",
    type=click.IntRange(min=0),
    default=0,
    help="Resamples for a 2.5-97.5% interval of each figure (e.g. 1000).",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the accuracy vs %-strong curve here (.html; .png needs kaleido).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures and curves as JSON.")
def route_eval(
    router: str, data: Path, bootstrap: int, plot_path: Path | None, as_json: bool
) -> None:
    """RouteLLM's figures of ROUTER (a file, or 'default' for the shipped one) on DATA.jsonl."""
    from ims_kit.routing import read_jsonl

    if plot_path is not None and plot_path.suffix.lower() not in PLOT_FORMATS:
        raise InvalidInputError(
            f"--plot writes {', '.join(PLOT_FORMATS)} files, not {plot_path.name!r}"
        )
    evaluation = _load(router).evaluate(read_jsonl(data), bootstrap=bootstrap)
    if as_json:
        echo_json(evaluation.to_dict())
    else:
        click.echo(str(evaluation))
    if plot_path is not None:  # after the figures: a plot that fails loses none of them
        _write_plot(evaluation.plot(title=f"{router} on {data.name}"), plot_path)
        if not as_json:
            click.echo(f"plot: {plot_path}")


PLOT_FORMATS = (".html", ".htm", ".png", ".svg", ".pdf", ".jpg", ".jpeg", ".webp")


def _write_plot(figure, path: Path) -> None:
    try:
        if path.suffix.lower() in (".html", ".htm"):
            figure.write_html(path, include_plotlyjs=True)  # self-contained: opens offline
            return
        figure.write_image(path)
    except OSError as exc:
        raise InvalidInputError(f"cannot write {path}: {exc.strerror or exc}") from None
    except (ImportError, ValueError, RuntimeError) as exc:  # no kaleido
        reason = " ".join(str(exc).split()).rstrip(".")
        raise InvalidInputError(
            f"cannot write {path.name}: {reason}; write an .html file instead"
        ) from None
