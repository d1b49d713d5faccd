"""The learned scorer: TF-IDF of hashed n-grams plus surface measures, two logistic heads.

A prompt's score is P(strong model right) - P(weak model right), each probability a logistic
regression on the same features: the expected accuracy gained by sending this prompt to the
strong model, in [-1, 1]. Features are computed as in training: per block (words, characters)
sublinear term frequency 1 + ln(count) times the bucket's IDF, scaled to unit length and then
by the block's weight; after the ``size`` buckets come the surface measures, standardised
with the training prompts' mean and deviation and multiplied by ``surface_scale``. Buckets
never seen in training (IDF 0) carry no weight. numpy only. Bucket weights are kept as int8
(scaled per head): the trained scorer already holds them so, so what is evaluated is what a
file stores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ims_kit.routing import storage
from ims_kit.routing.features import FeatureConfig, PromptFeatures, extract

HEADS = ("strong", "weak")


@dataclass(frozen=True, eq=False)
class LinearScorer:
    """What a router file stores of the model; the IDF table and float weights derive from it.

    ``df`` counts the training prompts holding each bucket (IDF 0 below ``min_df``);
    ``bucket_weights`` are int8 per head, times ``scales``; after the buckets come one float
    weight per surface measure, standardised with ``surface_mean`` and ``surface_std``.
    """

    features: FeatureConfig
    df: np.ndarray = field(repr=False)
    documents: int
    min_df: int
    bucket_weights: dict[str, np.ndarray] = field(repr=False)
    scales: dict[str, float]
    surface_weights: dict[str, tuple[float, ...]]
    surface_mean: np.ndarray
    surface_std: np.ndarray
    intercepts: dict[str, float]
    block_weights: tuple[float, float] = (1.0, 1.0)
    idf: np.ndarray = field(init=False, repr=False)
    weights: dict[str, np.ndarray] = field(init=False, repr=False)

    def __post_init__(self):
        n = len(self.features.surface)
        shapes_ok = self.df.shape == (self.features.size,) and all(
            self.bucket_weights[h].shape == (self.features.size,)
            and len(self.surface_weights[h]) == n
            for h in HEADS
        )
        if not shapes_ok or not len(self.surface_mean) == len(self.surface_std) == n:
            raise ValueError(
                f"the model's arrays do not fit its features ({self.features.size} buckets,"
                f" {n} surface measures)"
            )
        if len(self.block_weights) != 2 or not np.isfinite(self.block_weights).all():
            raise ValueError("block_weights must be two finite numbers")
        finite = [self.surface_mean, self.surface_std, *self.surface_weights.values()]
        if (
            not all(np.isfinite(np.asarray(a, dtype=float)).all() for a in finite)
            or (np.asarray(self.surface_std) <= 0).any()
        ):
            raise ValueError("the surface statistics must be finite, deviations positive")
        numbers = [*self.scales.values(), *self.intercepts.values()]
        if not np.isfinite(numbers).all() or self.documents < 1 or self.min_df < 1:
            raise ValueError("scales, intercepts, documents and min_df must be finite, positive")
        idf = idf_from(self.df, self.documents, self.min_df)
        weights = {
            h: np.concatenate(
                [
                    self.bucket_weights[h].astype(np.float64) * self.scales[h],
                    np.asarray(self.surface_weights[h], dtype=np.float64),
                ]
            )
            for h in HEADS
        }
        object.__setattr__(self, "idf", idf)
        object.__setattr__(self, "weights", weights)

    def to_dict(self) -> dict:
        """The ``model`` section of a router file (see ``ims_kit.routing.storage``)."""
        return {
            "kind": "logistic_pair",
            "block_weights": list(self.block_weights),
            "intercepts": dict(self.intercepts),
            "documents": self.documents,
            "min_df": self.min_df,
            "df": storage.pack(self.df.astype("<u4")),
            "weights": {h: storage.pack(self.bucket_weights[h].astype("i1")) for h in HEADS},
            "scales": dict(self.scales),
            "surface_mean": self.surface_mean.tolist(),
            "surface_std": self.surface_std.tolist(),
            "surface_weights": {h: list(self.surface_weights[h]) for h in HEADS},
        }

    @classmethod
    def from_dict(cls, features: FeatureConfig, model: dict) -> LinearScorer:
        """The scorer of a router file's ``model`` section (KeyError/TypeError/ValueError if
        it is not one)."""
        if model["kind"] != "logistic_pair":
            raise ValueError(f"unknown model kind {model['kind']!r}")
        return cls(
            features=features,
            df=storage.unpack(model["df"], "df").astype(np.int64),
            documents=int(model["documents"]),
            min_df=int(model["min_df"]),
            bucket_weights={h: storage.unpack(model["weights"][h], h) for h in HEADS},
            scales={h: float(model["scales"][h]) for h in HEADS},
            surface_weights={
                h: tuple(float(w) for w in model["surface_weights"][h]) for h in HEADS
            },
            surface_mean=np.array(model["surface_mean"], dtype=np.float64),
            surface_std=np.array(model["surface_std"], dtype=np.float64),
            intercepts={h: float(model["intercepts"][h]) for h in HEADS},
            block_weights=tuple(float(w) for w in model["block_weights"]),
        )

    def vector(self, prompt: str | PromptFeatures) -> tuple[np.ndarray, np.ndarray]:
        """The prompt's non-zero features: indices and values (duplicates possible)."""
        if isinstance(prompt, str):
            prompt = extract(prompt, self.features)
        return feature_vector(
            prompt,
            self.idf,
            self.block_weights,
            self.surface_mean,
            self.surface_std,
            self.features.surface_scale,
        )

    def logits(self, prompt: str | PromptFeatures) -> dict[str, float]:
        """Each head's linear output (log-odds that its model answers this prompt right)."""
        index, value = self.vector(prompt)
        return {
            head: float(self.intercepts[head] + value @ self.weights[head][index]) for head in HEADS
        }

    def score(self, prompt: str | PromptFeatures) -> float:
        """P(strong right) - P(weak right) for one prompt."""
        logit = self.logits(prompt)
        return _sigmoid(logit["strong"]) - _sigmoid(logit["weak"])

    def scores(self, prompts: Sequence[str | PromptFeatures]) -> list[float]:
        """``score`` of each prompt, in order."""
        return [self.score(p) for p in prompts]


def idf_from(df: np.ndarray, documents: int, min_df: int) -> np.ndarray:
    """Smoothed IDF, ln((1 + n) / (1 + df)) + 1, and 0 for buckets below ``min_df``."""
    idf = np.log((1.0 + documents) / (1.0 + df)) + 1.0
    idf[df < min_df] = 0.0
    return idf


def feature_vector(
    prompt: PromptFeatures,
    idf: np.ndarray,
    block_weights: Sequence[float],
    surface_mean: np.ndarray,
    surface_std: np.ndarray,
    surface_scale: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of one prompt's features, as training and scoring both build them."""
    indices, values = [], []
    for (bucket, count), weight in zip(prompt.blocks, block_weights, strict=True):
        value = (1.0 + np.log(count)) * idf[bucket]
        norm = float(np.sqrt(value @ value))
        if norm > 0:
            indices.append(bucket)
            values.append(value * (weight / norm))
    if len(prompt.surface):
        indices.append(len(idf) + np.arange(len(prompt.surface)))
        values.append((prompt.surface - surface_mean) / surface_std * surface_scale)
    if not indices:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    return np.concatenate(indices), np.concatenate(values)


def _sigmoid(x: float) -> float:
    return float(0.5 * (1.0 + np.tanh(0.5 * x)))  # no overflow for large |x|
