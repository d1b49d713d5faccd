"""From a target (a share of the strong model's quality, or of calls) to a score threshold.

A router's raw score says which prompts need the strong model more, not how many should get
it. The calibration table says it: the out-of-fold scores of the training prompts (each from a
model that never saw the prompt), sorted, give for every share of strong calls on a 0.5% grid
the threshold that sends that share, and the accuracy the training data had when routed so.
A new prompt goes to the strong model when its score >= the threshold.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from ims_kit.errors import InvalidInputError
from ims_kit.routing.metrics import check_outcomes

GRID_STEPS = 200  # shares 0, 0.5%, ..., 100%
DEFAULT_QUALITY = 0.95


@dataclass(frozen=True)
class Calibration:
    """Per share of strong calls: the score threshold and the accuracy on the training data."""

    strong_share: tuple[float, ...]
    threshold: tuple[float, ...]  # +inf at share 0 (nothing is strong), -inf at share 1
    accuracy: tuple[float, ...]
    weak_accuracy: float
    strong_accuracy: float
    n: int

    def threshold_for(self, target_quality: float = DEFAULT_QUALITY) -> float:
        """The score threshold expected to reach ``target_quality`` x the strong model's
        accuracy with the fewest strong calls (``inf`` when the weak model alone reaches it).

        Read from the table: the smallest share of strong calls whose accuracy reached the
        target, then the threshold sending that share. Above 1 is allowed (routing can beat
        the strong model alone); a target the table never reached is an InvalidInputError."""
        return self._at_share(self.share_for_quality(target_quality))

    def threshold_for_share(self, strong_share: float) -> float:
        """The score threshold sending ``strong_share`` (0-1) of the calibration prompts to the
        strong model (interpolated on the grid): ``inf`` at 0, ``-inf`` at 1."""
        return self._at_share(_fraction(strong_share, "strong_share"))

    def share_for_quality(self, target_quality: float) -> float:
        """The smallest grid share of strong calls whose accuracy reaches the target."""
        target = _fraction(target_quality, "target_quality", allow_above_one=True)
        accuracy = np.asarray(self.accuracy)
        reached = np.nonzero(accuracy >= target * self.strong_accuracy - 1e-12)[0]
        if len(reached) == 0:
            best = accuracy.max() / self.strong_accuracy
            raise InvalidInputError(
                f"target_quality {target_quality:g} is out of reach: on its training data this"
                f" router reaches at most {best:.3f} of the strong model's accuracy"
            )
        return float(self.strong_share[reached[0]])

    def expected_at(self, threshold: float) -> tuple[float, float]:
        """What routing at ``threshold`` gave on the calibration prompts: the share of strong
        calls (0-1) and the accuracy as a share of the strong model's (interpolated)."""
        if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
            raise InvalidInputError(f"threshold must be a number, not {threshold!r}")
        if np.isnan(threshold):
            raise InvalidInputError("threshold must be a number, not nan")
        inner = -np.asarray(self.threshold[1:-1])  # increasing, as the share grows
        shares = np.asarray(self.strong_share)
        if threshold == float("inf"):
            share = 0.0
        elif threshold == float("-inf"):
            share = 1.0
        else:
            share = float(np.interp(-threshold, inner, shares[1:-1], left=0.0, right=1.0))
        quality = float(np.interp(share, shares, self.accuracy)) / self.strong_accuracy
        return share, quality

    def _at_share(self, share: float) -> float:
        if share <= 0:
            return float("inf")
        if share >= 1:
            return float("-inf")
        grid = np.asarray(self.strong_share[1:-1])
        return float(np.interp(share, grid, np.asarray(self.threshold[1:-1])))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the infinite end thresholds are implied, stored as null)."""
        inner = list(self.threshold[1:-1])
        return {
            "strong_share": list(self.strong_share),
            "threshold": [None, *inner, None],
            "accuracy": list(self.accuracy),
            "weak_accuracy": self.weak_accuracy,
            "strong_accuracy": self.strong_accuracy,
            "n": self.n,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        """The table ``to_dict`` wrote (KeyError/TypeError/ValueError if it is not one)."""
        share = tuple(float(x) for x in data["strong_share"])
        inner = tuple(float(x) for x in data["threshold"][1:-1])
        accuracy = tuple(float(x) for x in data["accuracy"])
        if not (len(share) == len(accuracy) == len(inner) + 2 >= 3):
            raise ValueError("calibration columns of different lengths")
        return cls(
            strong_share=share,
            threshold=(float("inf"), *inner, float("-inf")),
            accuracy=accuracy,
            weak_accuracy=float(data["weak_accuracy"]),
            strong_accuracy=float(data["strong_accuracy"]),
            n=int(data["n"]),
        )

    def to_frame(self):
        """The table as a DataFrame: strong_share, threshold, accuracy."""
        import pandas as pd

        return pd.DataFrame(
            {
                "strong_share": self.strong_share,
                "threshold": self.threshold,
                "accuracy": self.accuracy,
            }
        )


def calibrate(scores, strong_correct, weak_correct, steps: int = GRID_STEPS) -> Calibration:
    """The table of out-of-fold ``scores``: the top k prompts go strong, k = share x n."""
    strong, weak = check_outcomes(strong_correct, weak_correct)
    values = np.asarray(scores, dtype=float)
    n = len(values)
    order = np.argsort(-values, kind="stable")
    ranked = values[order]
    gained = np.concatenate([[0], np.cumsum(strong[order].astype(int) - weak[order])])
    share = np.linspace(0, 1, steps + 1)
    k = np.rint(share * n).astype(int)
    accuracy = (weak.sum() + gained[k]) / n
    inner = k[1:-1].clip(1, n - 1)
    # halfway between the last prompt sent strong and the first kept weak
    threshold = (ranked[inner - 1] + ranked[inner]) / 2
    return Calibration(
        strong_share=tuple(share.tolist()),
        threshold=(float("inf"), *threshold.tolist(), float("-inf")),
        accuracy=tuple(accuracy.tolist()),
        weak_accuracy=float(weak.mean()),
        strong_accuracy=float(strong.mean()),
        n=n,
    )


def _fraction(value: Any, name: str, *, allow_above_one: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise InvalidInputError(f"{name} must be a number, not {value!r}")
    if allow_above_one and value <= 0:
        raise InvalidInputError(f"{name} must be a positive share, e.g. 0.95, not {value!r}")
    if not allow_above_one and not 0 <= value <= 1:
        raise InvalidInputError(f"{name} must be between 0 and 1, not {value!r}")
    return float(value)
