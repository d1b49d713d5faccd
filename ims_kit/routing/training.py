"""Fitting the scorer with scikit-learn, and out-of-fold scores for calibration and figures.

scikit-learn (the ``routing`` extra) is imported here only, inside the functions: scoring a
prompt with a trained router needs numpy alone. The defaults are the configuration chosen by
cross-validation on the RouteLLM dev sets (docs/ROUTING.md).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ims_kit.errors import ImsError, InvalidInputError
from ims_kit.routing.data import Outcomes
from ims_kit.routing.features import FeatureConfig, PromptFeatures, extract
from ims_kit.routing.model import HEADS, LinearScorer


@dataclass(frozen=True)
class TrainOptions:
    """How a scorer is fitted: features, regularisation, pruning and calibration folds."""

    features: FeatureConfig = field(default_factory=FeatureConfig)
    C: float = 0.3  # inverse L2 strength of both logistic heads
    min_df: int = 2  # buckets seen in fewer training prompts get no weight
    block_weights: tuple[float, float] = (1.0, 1.0)
    folds: int = 5  # for the out-of-fold calibration scores
    seed: int = 0
    max_iter: int = 1000

    def __post_init__(self):
        if not isinstance(self.features, FeatureConfig):
            raise InvalidInputError(
                f"features must be a FeatureConfig or a dict, not {self.features!r}"
            )
        c = self.C
        if isinstance(c, bool) or not isinstance(c, int | float) or not 0 < c < math.inf:
            raise InvalidInputError(f"C must be a positive number, not {c!r}")
        for name, low in (("min_df", 1), ("folds", 2), ("seed", 0), ("max_iter", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InvalidInputError(f"{name} must be an integer >= {low}, not {value!r}")
        weights = self.block_weights
        if (
            not isinstance(weights, tuple | list)
            or len(weights) != 2
            or not all(isinstance(w, int | float) and 0 <= w < math.inf for w in weights)
        ):
            raise InvalidInputError(
                f"block_weights must be two non-negative numbers (words, characters), not"
                f" {weights!r}"
            )

    def to_dict(self) -> dict:
        """JSON-ready form, kept in the router file's metadata."""
        return {
            "features": self.features.to_dict(),
            "C": self.C,
            "min_df": self.min_df,
            "block_weights": list(self.block_weights),
            "folds": self.folds,
            "seed": self.seed,
        }


def _sklearn():
    try:
        import scipy.sparse
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedGroupKFold
    except ImportError:
        raise ImsError(
            "training a router needs scikit-learn: pip install 'ims_kit[routing]'"
            " (scoring with a trained router does not)"
        ) from None
    return scipy.sparse, LogisticRegression, StratifiedGroupKFold


def featurize(prompts: Sequence[str], config: FeatureConfig) -> list[PromptFeatures]:
    """The features of every prompt (IDF, the standardisation and the matrix are built on them)."""
    return [extract(p, config) for p in prompts]


def document_frequency(features: Sequence[PromptFeatures], size: int) -> np.ndarray:
    """For each bucket, how many prompts contain it (in any block)."""
    df = np.zeros(size, dtype=np.int64)
    for f in features:
        df[np.unique(np.concatenate([bucket for bucket, _ in f.blocks]))] += 1
    return df


def surface_stats(features: Sequence[PromptFeatures]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each surface measure (deviation 1 where it is 0)."""
    values = np.array([f.surface for f in features], dtype=np.float64)
    if values.size == 0:
        return np.zeros(0), np.ones(0)
    std = values.std(axis=0)
    return values.mean(axis=0), np.where(std > 0, std, 1.0)


def feature_rows(features: Sequence[PromptFeatures], scorer: LinearScorer):
    """The sparse feature matrix of these prompts, one row each, as the scorer computes it."""
    sparse, _, _ = _sklearn()
    rows, cols, vals = [], [], []
    for i, f in enumerate(features):
        index, value = scorer.vector(f)
        rows.append(np.full(len(index), i))
        cols.append(index)
        vals.append(value)
    shape = (len(features), len(scorer.idf) + len(scorer.surface_mean))
    matrix = sparse.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=shape
    )
    matrix.sum_duplicates()
    return matrix


def quantize(weights: np.ndarray) -> tuple[np.ndarray, float]:
    """int8 weights and their scale (weight = q * scale): how the router file stores them."""
    peak = float(np.abs(weights).max()) if weights.size else 0.0
    scale = peak / 127 if peak > 0 else 1.0
    return np.rint(weights / scale).astype(np.int8), scale


def unfitted_scorer(features: Sequence[PromptFeatures], options: TrainOptions) -> LinearScorer:
    """A scorer with the IDF and standardisation of these prompts and zero weights."""
    size = options.features.size
    mean, std = surface_stats(features)
    return LinearScorer(
        features=options.features,
        df=document_frequency(features, size),
        documents=len(features),
        min_df=options.min_df,
        bucket_weights={h: np.zeros(size, dtype=np.int8) for h in HEADS},
        scales={h: 1.0 for h in HEADS},
        surface_weights={h: (0.0,) * len(mean) for h in HEADS},
        surface_mean=mean,
        surface_std=std,
        intercepts={h: 0.0 for h in HEADS},
        block_weights=tuple(options.block_weights),
    )


def fit_scorer(
    features: Sequence[PromptFeatures], outcomes: Outcomes, options: TrainOptions
) -> LinearScorer:
    """The two heads fitted on these prompts, bucket weights quantised to int8."""
    _, LogisticRegression, _ = _sklearn()
    base = unfitted_scorer(features, options)
    size = options.features.size
    matrix = feature_rows(features, base)
    fitted = {"bucket_weights": {}, "scales": {}, "surface_weights": {}, "intercepts": {}}
    for head in HEADS:
        labels = np.asarray(getattr(outcomes, f"{head}_correct"), dtype=bool)
        if labels.all() or not labels.any():  # one class in this sample: a constant head
            rate = (labels.sum() + 0.5) / (len(labels) + 1.0)
            coef, intercept = np.zeros(matrix.shape[1]), float(np.log(rate / (1 - rate)))
        else:
            model = LogisticRegression(C=options.C, solver="liblinear", max_iter=options.max_iter)
            model.fit(matrix, labels)
            coef, intercept = model.coef_[0], float(model.intercept_[0])
        q, scale = quantize(coef[:size])
        fitted["bucket_weights"][head], fitted["scales"][head] = q, scale
        fitted["surface_weights"][head] = tuple(float(w) for w in coef[size:])
        fitted["intercepts"][head] = intercept
    return dataclasses.replace(base, **fitted)


def fold_indices(outcomes: Outcomes, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified (by the four outcome pairs) k-fold splits; identical prompts share a fold."""
    _, _, StratifiedGroupKFold = _sklearn()
    import warnings

    strata = np.asarray(outcomes.strong_correct, int) * 2 + np.asarray(outcomes.weak_correct, int)
    _, groups = np.unique(np.asarray(outcomes.prompts, dtype=object), return_inverse=True)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # a small sample may have fewer members of a pair than k
        warnings.simplefilter("ignore", UserWarning)
        try:
            return list(splitter.split(strata, strata, groups))
        except ValueError:
            raise InvalidInputError(
                f"{len(set(groups.tolist()))} different prompts are too few for {folds} folds:"
                f" label more prompts (a few hundred) or lower folds"
            ) from None


def out_of_fold(
    features: Sequence[PromptFeatures], outcomes: Outcomes, options: TrainOptions
) -> np.ndarray:
    """Each prompt's score from a scorer fitted on the other folds only."""
    scores = np.zeros(len(outcomes))
    for train, test in fold_indices(outcomes, options.folds, options.seed):
        scorer = fit_scorer([features[i] for i in train], outcomes.subset(train), options)
        scores[test] = scorer.scores([features[i] for i in test])
    return scores
