"""A router's figures on labelled prompts, beside the random router and the oracle."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ims_kit.routing import metrics
from ims_kit.routing.metrics import Curve

if TYPE_CHECKING:
    from plotly.graph_objects import Figure

FIGURES = ("cpt50", "cpt80", "apgr", "strong_share_at_95")
_LABELS = {
    "cpt50": "CPT(50%)",
    "cpt80": "CPT(80%)",
    "apgr": "APGR",
    "strong_share_at_95": "% strong for 95% quality",
}


@dataclass(frozen=True)
class RouterEvaluation:
    """RouteLLM's figures of a router on n labelled prompts, with the random and oracle ones.

    ``cpt50``, ``cpt80`` and ``strong_share_at_95`` are in % of calls sent to the strong model
    (0-100, as RouteLLM prints CPT); ``apgr`` is a ratio (random 0.5). ``spread`` holds the
    2.5-97.5 percentile bootstrap interval of each figure when one was asked for.
    """

    n: int
    weak_accuracy_pct: float
    strong_accuracy_pct: float
    cpt50: float
    cpt80: float
    apgr: float
    strong_share_at_95: float
    curve: Curve
    random: Curve
    oracle: Curve
    spread: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    trained_on_overlap: int = 0  # rows whose prompt the router was trained on

    @property
    def caveat(self) -> str | None:
        """Said beside the figures when the router was trained on some of these prompts."""
        if not self.trained_on_overlap:
            return None
        return (
            f"the router was trained on {self.trained_on_overlap} of these {self.n} prompts:"
            " these figures are not those of unseen prompts (they flatter the router)"
        )

    def figures(self, which: str = "router") -> dict[str, float]:
        """The four figures of ``router``, ``random`` or ``oracle``."""
        curve = {"router": self.curve, "random": self.random, "oracle": self.oracle}[which]
        return {k: v for k, v in metrics.summary(curve).items() if k in FIGURES}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the CLI's ``--json``)."""

        def points(curve: Curve) -> list[dict[str, float]]:
            return [
                {"strong_pct": x, "accuracy_pct": y}
                for x, y in zip(curve.strong_pct, curve.accuracy_pct)
            ]

        return {
            "n": self.n,
            "trained_on_overlap": self.trained_on_overlap,
            "weak_accuracy_pct": self.weak_accuracy_pct,
            "strong_accuracy_pct": self.strong_accuracy_pct,
            "router": self.figures("router"),
            "random": self.figures("random"),
            "oracle": self.figures("oracle"),
            "spread": {k: list(v) for k, v in self.spread.items()},
            "curve": [
                p | {"threshold": t} for p, t in zip(points(self.curve), self.curve.thresholds)
            ],
            "random_curve": points(self.random),
            "oracle_curve": points(self.oracle),
        }

    def to_frame(self):
        """The three curves, one row per point: router, strong_pct, accuracy_pct."""
        import pandas as pd

        rows = [
            {"router": name, "strong_pct": x, "accuracy_pct": y}
            for name, curve in (
                ("router", self.curve),
                ("random", self.random),
                ("oracle", self.oracle),
            )
            for x, y in zip(curve.strong_pct, curve.accuracy_pct)
        ]
        return pd.DataFrame(rows)

    def table(self):
        """The figures as a DataFrame: one row each for router, random and oracle."""
        import pandas as pd

        rows = {w: self.figures(w) for w in ("router", "random", "oracle")}
        return pd.DataFrame.from_dict(rows, orient="index").rename(columns=_LABELS)

    def _repr_html_(self) -> str:
        head = (
            f"<p>{self.n} prompts; weak model {self.weak_accuracy_pct:.2f}% right, strong"
            f" {self.strong_accuracy_pct:.2f}%. CPT and % strong are % of calls sent to the"
            " strong model.</p>"
        )
        shown = self.table().map(lambda v: f"{v:.3f}").astype(object)
        if self.spread:
            shown.loc["router, 95% interval"] = [
                "{:.3f} - {:.3f}".format(*self.spread[k]) if k in self.spread else ""
                for k in FIGURES
            ]
        warning = f"<p><b>Note:</b> {self.caveat}.</p>" if self.caveat else ""
        return head + warning + shown.to_html()

    def __repr__(self) -> str:
        return (
            f"<RouterEvaluation on {self.n} prompts: CPT(50%) {self.cpt50:.2f}%,"
            f" CPT(80%) {self.cpt80:.2f}%, APGR {self.apgr:.3f},"
            f" {self.strong_share_at_95:.2f}% strong for 95% quality"
            f"{f' ({self.trained_on_overlap} trained on)' if self.trained_on_overlap else ''}>"
        )

    def __str__(self) -> str:
        lines = [
            f"{self.n} prompts: weak {self.weak_accuracy_pct:.2f}% right,"
            f" strong {self.strong_accuracy_pct:.2f}%",
            f"{'':8}" + "".join(f"{_LABELS[k]:>26}" for k in FIGURES),
        ]
        for which in ("router", "random", "oracle"):
            values = self.figures(which)
            cells = [f"{values[k]:.3f}" if k == "apgr" else f"{values[k]:.2f}%" for k in FIGURES]
            if which == "router" and self.spread:
                cells = [
                    c + " [{:.3g}, {:.3g}]".format(*self.spread[k]) if k in self.spread else c
                    for c, k in zip(cells, FIGURES)
                ]
            lines.append(f"{which:8}" + "".join(f"{c:>26}" for c in cells))
        if self.caveat:
            lines.append(f"note: {self.caveat}")
        return "\n".join(lines)

    def plot(self, title: str = "Accuracy against strong-model calls") -> Figure:
        """Accuracy (%) vs % strong calls: the router, random and the oracle, weak and strong."""
        import plotly.graph_objects as go

        fig = go.Figure()
        styles = (
            ("router", self.curve, {"color": "#2e6fbd", "width": 3}, "lines+markers"),
            ("random", self.random, {"color": "#9a9a9a", "dash": "dash"}, "lines+markers"),
            ("oracle", self.oracle, {"color": "#2e9d5b", "dash": "dot"}, "lines+markers"),
        )
        for name, curve, line, mode in styles:
            label = f"{name} (APGR {curve.apgr():.3f})"
            fig.add_trace(
                go.Scatter(
                    x=curve.strong_pct, y=curve.accuracy_pct, name=label, mode=mode, line=line
                )
            )
        for name, y in (("weak", self.weak_accuracy_pct), ("strong", self.strong_accuracy_pct)):
            fig.add_hline(
                y=y,
                line={"color": "#bbbbbb", "width": 1},
                annotation_text=f"{name} only",
                annotation_position="top left",
            )
        fig.update_layout(
            title={"text": title, "x": 0, "xanchor": "left"},
            xaxis_title="calls sent to the strong model (%)",
            yaxis_title="accuracy (%)",
            template="plotly_white",
            height=420,
            legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 1, "xanchor": "right"},
        )
        return fig


def evaluate_scores(
    scores, strong_correct, weak_correct, *, bootstrap: int = 0, seed: int = 0
) -> RouterEvaluation:
    """The evaluation of these scores on these labels; ``bootstrap`` resamples for the spread.

    The random reference is RouteLLM's random router with this seed (its expectation is the
    straight line from weak to strong: APGR 0.5, CPT(50%) = 50%)."""
    import numpy as np

    values = np.asarray(scores, dtype=float)
    curve = metrics.routing_curve(values, strong_correct, weak_correct)
    random = metrics.routing_curve(
        metrics.random_scores(len(values), seed), strong_correct, weak_correct
    )
    spread = {}
    if bootstrap:
        spread = metrics.bootstrap(
            values, strong_correct, weak_correct, resamples=bootstrap, seed=seed
        )
        spread.pop("cpt20")
    figures = metrics.summary(curve)
    return RouterEvaluation(
        n=len(values),
        weak_accuracy_pct=curve.weak_accuracy_pct,
        strong_accuracy_pct=curve.strong_accuracy_pct,
        cpt50=figures["cpt50"],
        cpt80=figures["cpt80"],
        apgr=figures["apgr"],
        strong_share_at_95=figures["strong_share_at_95"],
        curve=curve,
        random=random,
        oracle=metrics.oracle_curve(strong_correct, weak_correct),
        spread=spread,
    )
