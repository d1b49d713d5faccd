"""The Router users hold: train, score, pick a threshold, evaluate, save and load."""

from __future__ import annotations

import dataclasses
import functools
import time
import warnings
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, overload

import numpy as np

from ims_kit.errors import InvalidInputError
from ims_kit.routing import storage
from ims_kit.routing.calibration import DEFAULT_QUALITY, Calibration, calibrate
from ims_kit.routing.data import check_rows
from ims_kit.routing.evaluation import RouterEvaluation, evaluate_scores
from ims_kit.routing.features import FeatureConfig
from ims_kit.routing.model import LinearScorer

DEFAULT_FILE = "default_router.json"
MIN_PROMPTS = 20  # fewer cannot fill the folds that calibrate the thresholds
FEW_ROWS = 200  # below this a trained router comes with a warning


@dataclass(frozen=True, eq=False)
class Router:
    """A trained scorer (higher = needs the strong model), its calibration and its metadata."""

    scorer: LinearScorer = field(repr=False)
    calibration: Calibration = field(repr=False)
    metadata: dict[str, Any]
    seen: np.ndarray | None = field(default=None, repr=False)  # training prompts' fingerprints

    @overload
    def score(self, prompts: str) -> float: ...
    @overload
    def score(self, prompts: Iterable[str]) -> list[float]: ...
    def score(self, prompts):
        """P(strong right) - P(weak right) per prompt: a float for one str, else a list."""
        if isinstance(prompts, str):
            return self.scorer.score(prompts)
        if isinstance(prompts, bytes | Mapping) or not isinstance(prompts, Iterable):
            raise InvalidInputError(f"score needs a prompt or a list of prompts, not {prompts!r}")
        prompts = list(prompts)  # a tuple, a pandas Series, a generator
        for i, p in enumerate(prompts):
            if not isinstance(p, str):
                raise InvalidInputError(f"prompt {i} is a {type(p).__name__}, not a string")
        return self.scorer.scores(prompts)

    def threshold_for(self, target_quality: float = DEFAULT_QUALITY) -> float:
        """The score threshold at which routing is expected to reach ``target_quality`` x the
        strong model's accuracy (0.95: 95% of it) with the fewest strong calls.

        Send a prompt to the strong model when ``score(prompt) >= threshold``. The expectation
        is read from the stored calibration curve: the out-of-fold scores of the training
        prompts (each from a model that never saw it) and the accuracy routing at each share
        of strong calls gave on them. It holds for traffic like the training data. ``inf`` (no
        strong calls) when the weak model alone reaches the target; a target the curve never
        reached (e.g. 5.0) is an InvalidInputError. Values above 1 are allowed, as routing can
        beat the strong model alone."""
        return self.calibration.threshold_for(target_quality)

    def threshold_for_share(self, strong_share: float) -> float:
        """The score threshold that sends ``strong_share`` (0-1) of prompts to the strong model
        (a budget of strong calls), read from the same calibration curve: ``inf`` at 0 (none),
        ``-inf`` at 1 (all); route strong when ``score(prompt) >= threshold``."""
        return self.calibration.threshold_for_share(strong_share)

    def expected_at(self, threshold: float) -> tuple[float, float]:
        """What routing at ``threshold`` gave on the calibration curve: the share of prompts sent
        to the strong model (0-1) and the accuracy as a share of the strong model's."""
        return self.calibration.expected_at(threshold)

    def evaluate(self, rows, *, bootstrap: int = 0, seed: int = 0) -> RouterEvaluation:
        """RouteLLM's figures on labelled rows, against random and the oracle.

        ``trained_on_overlap`` counts the rows whose prompt the router was trained on: figures
        on those are not figures on unseen prompts (the table says so)."""
        for name, value in (("bootstrap", bootstrap), ("seed", seed)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInputError(f"{name} must be an integer >= 0, not {value!r}")
        outcomes = check_rows(rows)
        scores = self.scorer.scores(outcomes.prompts)
        evaluation = evaluate_scores(
            scores, outcomes.strong_correct, outcomes.weak_correct, bootstrap=bootstrap, seed=seed
        )
        return dataclasses.replace(evaluation, trained_on_overlap=self.overlap(outcomes.prompts))

    def overlap(self, prompts: Iterable[str]) -> int:
        """How many of these prompts the router was trained on (0 when it does not know)."""
        if self.seen is None or not len(self.seen):
            return 0
        return int(np.isin(fingerprints(prompts), self.seen).sum())

    def save(self, path: str | Path) -> Path:
        """Write the router file (JSON, see ``ims_kit.routing.storage``); returns its path."""
        document = {
            "features": self.scorer.features.to_dict(),
            "model": self.scorer.to_dict(),
            "calibration": self.calibration.to_dict(),
            "metadata": self.metadata,
        }
        if self.seen is not None:
            document["seen"] = storage.pack(self.seen.astype("<u4"))
        return storage.write(path, document)

    def __repr__(self) -> str:
        apgr = self.metadata.get("out_of_fold", {}).get("apgr", float("nan"))
        return (
            f"<Router trained on {self.metadata.get('trained_on', '?')}:"
            f" out-of-fold APGR {apgr:.3f}>"
        )


def train_router(rows, *, metadata: dict[str, Any] | None = None, **options) -> Router:
    """Fit a router on labelled rows (dicts or a DataFrame: prompt, strong_correct,
    weak_correct); ``options`` are ``TrainOptions`` fields (C, min_df, folds, features, ...)."""
    from ims_kit.routing import training

    if metadata is not None:
        storage.check_metadata(metadata)
    outcomes = check_rows(rows, need_both_outcomes=True)
    distinct = len(set(outcomes.prompts))
    if distinct < MIN_PROMPTS:
        raise InvalidInputError(
            f"a router needs at least {MIN_PROMPTS} different labelled prompts to learn from"
            f" (these rows have {distinct}); a few hundred give a useful one"
        )
    if isinstance(options.get("features"), dict):
        options["features"] = FeatureConfig.from_dict(options["features"])
    try:
        opts = training.TrainOptions(**options)
    except TypeError as exc:
        known = ", ".join(f.name for f in dataclasses.fields(training.TrainOptions))
        raise InvalidInputError(f"train_router: {exc}; its options are {known}") from None
    started = time.perf_counter()
    features = training.featurize(outcomes.prompts, opts.features)
    scorer = training.fit_scorer(features, outcomes, opts)
    oof = training.out_of_fold(features, outcomes, opts)
    figures = evaluate_scores(oof, outcomes.strong_correct, outcomes.weak_correct).figures()
    meta = {
        "trained_on": f"{len(outcomes)} labelled prompts",
        "rows": len(outcomes),
        "strong_accuracy": float(np.mean(outcomes.strong_correct)),
        "weak_accuracy": float(np.mean(outcomes.weak_correct)),
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "train_seconds": round(time.perf_counter() - started, 2),
        "options": opts.to_dict(),
        "out_of_fold": figures,
    } | (metadata or {})
    meta["warnings"] = _warnings(len(outcomes), figures["apgr"])
    for warning in meta["warnings"]:
        warnings.warn(warning, UserWarning, stacklevel=2)
    calibration = calibrate(oof, outcomes.strong_correct, outcomes.weak_correct)
    seen = np.unique(fingerprints(outcomes.prompts))
    return Router(scorer=scorer, calibration=calibration, metadata=meta, seen=seen)


def _warnings(rows: int, apgr: float) -> list[str]:
    """What a user should know before trusting a freshly trained router."""
    out = []
    if apgr < 0.55:
        out.append(
            f"out of fold this router recovers {apgr:.3f} of the quality gap, about what a"
            " random router does (0.5): it learned little from these rows"
        )
    if rows < FEW_ROWS:
        out.append(
            f"trained on only {rows} labelled prompts: its figures and thresholds are rough"
            f" (a few hundred make them steadier)"
        )
    return out


def fingerprints(prompts: Iterable[str]) -> np.ndarray:
    """32-bit fingerprints of prompt texts, to tell which ones a router was trained on."""
    return np.fromiter((zlib.crc32(p.encode("utf-8")) for p in prompts), dtype=np.uint32)


def load_router(path: str | Path) -> Router:
    """The router saved at ``path``; a damaged or foreign file is an InvalidInputError."""
    document = storage.read(path)
    try:
        features = FeatureConfig.from_dict(document["features"])
        scorer = LinearScorer.from_dict(features, document["model"])
        calibration = Calibration.from_dict(document["calibration"])
        seen = storage.unpack(document["seen"], "seen") if "seen" in document else None
    except (KeyError, TypeError, ValueError) as exc:  # InvalidInputError is a ValueError
        raise InvalidInputError(f"{path}: not a valid router file ({exc})") from None
    return Router(scorer=scorer, calibration=calibration, metadata=document["metadata"], seen=seen)


@functools.cache
def default_router() -> Router:
    """The router shipped in the package (trained on RouteLLM's GSM8K and MMLU dev sets)."""
    with resources.as_file(resources.files("ims_kit.routing") / DEFAULT_FILE) as path:
        return load_router(path)
