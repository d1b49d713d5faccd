"""RouteLLM's routing metrics, reproduced exactly: the threshold sweep, CPT(x%) and APGR.

The definitions are those of lm-sys/RouteLLM (``routellm/evals/benchmarks.py`` and
``evaluate.py``): thresholds are the edges of ``pandas.qcut(scores, 10, retbins=True)``; at
every edge but the last the prompts with score >= edge go to the strong model, at the last
(the maximum) those with score > edge, so the sweep runs from 100% to 0% strong calls. Each
edge gives a point (% strong calls, accuracy in %), the points are sorted by % strong calls,
CPT(x%) is ``np.interp`` of weak + x * (strong - weak) over them and APGR is the trapezoidal
area between the weak and strong lines, normalised. Accuracies and shares are in percent, as
RouteLLM prints them.

Ties: RouteLLM calls ``qcut`` with its default ``duplicates="raise"`` (its comment says the
bins include duplicates), so scores with many ties (a constant score, a 0/1 oracle) raise
there. Here the same eleven edges are kept, duplicates included: ``qcut`` is used whenever it
accepts the scores, otherwise the quantiles it would have taken. A duplicated edge repeats a
point, which adds no area and moves no interpolation; a constant score gives the straight line
from weak to strong (APGR 0.5, CPT(50%) = 50%), as a random router does on average.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

BINS = 10
QUALITY_SHARE = 0.95  # "the % of strong calls to reach 95% of the strong model's accuracy"


@dataclass(frozen=True)
class Curve:
    """Accuracy (%) against strong calls (%), sorted by strong calls, with the two references."""

    strong_pct: tuple[float, ...]
    accuracy_pct: tuple[float, ...]
    thresholds: tuple[float, ...]
    weak_accuracy_pct: float
    strong_accuracy_pct: float

    def cpt(self, x: float) -> float:
        """% strong calls at which accuracy recovers the share ``x`` of the weak-strong gap."""
        target = self.weak_accuracy_pct + x * (self.strong_accuracy_pct - self.weak_accuracy_pct)
        return float(np.interp(target, self.accuracy_pct, self.strong_pct))

    def apgr(self) -> float:
        """Average performance gap recovered: area over the weak line / area strong minus weak."""
        x = np.asarray(self.strong_pct) / 100
        area = _trapezoid(np.asarray(self.accuracy_pct), x)
        weak = _trapezoid(np.full(len(x), self.weak_accuracy_pct), x)
        strong = _trapezoid(np.full(len(x), self.strong_accuracy_pct), x)
        if strong == weak:
            return float("nan")  # the two models are equally good: there is no gap to recover
        return float((area - weak) / (strong - weak))

    def strong_pct_for_quality(self, share: float = QUALITY_SHARE) -> float:
        """% strong calls at which accuracy reaches ``share`` of the strong model's accuracy."""
        return float(
            np.interp(share * self.strong_accuracy_pct, self.accuracy_pct, self.strong_pct)
        )


def check_outcomes(strong_correct, weak_correct) -> tuple[np.ndarray, np.ndarray]:
    """The two label columns as boolean arrays of one length (ValueError otherwise)."""
    strong = np.asarray(strong_correct, dtype=bool)
    weak = np.asarray(weak_correct, dtype=bool)
    if strong.ndim != 1 or strong.shape != weak.shape or len(strong) == 0:
        raise ValueError(
            "strong_correct and weak_correct must be two non-empty columns of a length"
        )
    return strong, weak


def thresholds(scores: Sequence[float] | np.ndarray, bins: int = BINS) -> np.ndarray:
    """The ``bins + 1`` edges of ``pandas.qcut(scores, bins, retbins=True)``, duplicates kept."""
    import pandas as pd

    values = np.asarray(scores, dtype=float)
    if values.ndim != 1 or len(values) == 0 or not np.isfinite(values).all():
        raise ValueError("scores must be a non-empty column of finite numbers")
    try:
        _, edges = pd.qcut(values, bins, retbins=True)
    except ValueError:  # duplicate edges: the quantiles qcut would have cut at, kept as they are
        edges = pd.Series(values).quantile(np.linspace(0, 1, bins + 1)).to_numpy()
    return np.asarray(edges, dtype=float)


def routing_curve(scores, strong_correct, weak_correct, bins: int = BINS) -> Curve:
    """RouteLLM's sweep: at each qcut edge route score >= edge (the last: > edge) to strong."""
    strong, weak = check_outcomes(strong_correct, weak_correct)
    values = np.asarray(scores, dtype=float)
    if values.shape != strong.shape:
        raise ValueError(f"{len(values)} scores for {len(strong)} labelled prompts")
    edges = thresholds(values, bins)
    chosen = values[None, :] >= edges[:, None]
    chosen[-1] = values > edges[-1]
    accuracy = np.where(chosen, strong[None, :], weak[None, :]).mean(axis=1) * 100
    share = chosen.mean(axis=1) * 100
    order = np.argsort(share, kind="stable")
    return Curve(
        strong_pct=tuple(share[order].tolist()),
        accuracy_pct=tuple(accuracy[order].tolist()),
        thresholds=tuple(edges[order].tolist()),
        weak_accuracy_pct=float(weak.mean() * 100),
        strong_accuracy_pct=float(strong.mean() * 100),
    )


def oracle_curve(strong_correct, weak_correct, bins: int = BINS) -> Curve:
    """RouteLLM's optimal router at 0, 10, ..., 100% strong calls: the strong model only where
    it is right and the weak one wrong (``get_optimal_accuracy``)."""
    strong, weak = check_outcomes(strong_correct, weak_correct)
    total = len(strong)
    gain = int(np.sum(strong & ~weak))
    share = np.linspace(0, 100, bins + 1)
    accuracy = (weak.sum() + np.minimum(total * share / 100, gain)) / total * 100
    return Curve(
        strong_pct=tuple(share.tolist()),
        accuracy_pct=tuple(accuracy.tolist()),
        thresholds=tuple(float("nan") for _ in share),
        weak_accuracy_pct=float(weak.mean() * 100),
        strong_accuracy_pct=float(strong.mean() * 100),
    )


def random_scores(n: int, seed: int = 0) -> np.ndarray:
    """Uniform random scores, RouteLLM's ``random`` router (seeded, so a figure is repeatable)."""
    return np.random.default_rng(seed).random(n)


def summary(curve: Curve) -> dict[str, float]:
    """A curve's figures: CPT(20/50/80%), APGR and ``strong_share_at_95``, the % of strong
    calls at which accuracy reaches 95% of the strong model's (calls in %, as CPT)."""
    return {
        "cpt20": curve.cpt(0.2),
        "cpt50": curve.cpt(0.5),
        "cpt80": curve.cpt(0.8),
        "apgr": curve.apgr(),
        "strong_share_at_95": curve.strong_pct_for_quality(QUALITY_SHARE),
    }


def bootstrap(
    scores, strong_correct, weak_correct, *, resamples: int = 1000, seed: int = 0
) -> dict[str, tuple[float, float]]:
    """2.5 and 97.5 percentiles of each ``summary`` figure over prompts drawn with replacement."""
    values = np.asarray(scores, dtype=float)
    strong, weak = check_outcomes(strong_correct, weak_correct)
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    for _ in range(resamples):
        pick = rng.integers(0, len(values), len(values))
        for key, value in summary(routing_curve(values[pick], strong[pick], weak[pick])).items():
            draws.setdefault(key, []).append(value)
    return {
        key: (float(np.nanpercentile(v, 2.5)), float(np.nanpercentile(v, 97.5)))
        for key, v in draws.items()
    }


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    """``np.trapezoid`` (``np.trapz`` before numpy 2.0, which RouteLLM calls)."""
    integrate = getattr(np, "trapezoid", None) or np.trapz
    return float(integrate(y, x))
