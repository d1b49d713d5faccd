"""RouteLLM's routing metrics against cases computed by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ims_kit.routing import metrics

# Ten prompts, scores 0.0 ... 0.9 in order. The weak model is right on the first six, the
# strong one on all: routing the k highest scores to strong gains min(k, 4) prompts.
SCORES = [i / 10 for i in range(10)]
STRONG = [True] * 10
WEAK = [True] * 6 + [False] * 4
# By hand: qcut's edges are 0, 0.09, ..., 0.81, 0.9; each drops the lowest score, the last
# (> 0.9) drops all. Accuracy at 0, 10, ..., 100% strong: 60, 70, 80, 90, then 100.
HAND_SHARES = [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
HAND_ACCURACY = [60, 70, 80, 90, 100, 100, 100, 100, 100, 100, 100]


def test_thresholds_are_the_edges_of_qcut():
    """The thresholds are exactly the bins of pandas.qcut(scores, 10, retbins=True)."""
    scores = np.random.default_rng(3).normal(size=501)
    _, edges = pd.qcut(scores, 10, retbins=True)
    assert metrics.thresholds(scores).tolist() == edges.tolist()


def test_curve_matches_the_hand_computed_points():
    """Each edge sends scores >= it (the last: > it) to strong; points sorted by share."""
    curve = metrics.routing_curve(SCORES, STRONG, WEAK)
    assert curve.strong_pct == pytest.approx(HAND_SHARES)
    assert curve.accuracy_pct == pytest.approx(HAND_ACCURACY)
    assert (curve.weak_accuracy_pct, curve.strong_accuracy_pct) == (60.0, 100.0)


def test_cpt_apgr_and_share_for_95_match_the_hand_computation():
    """CPT(50%) 20%, CPT(80%) 32%, APGR (92 - 60) / (100 - 60) = 0.8, 95% quality at 35%."""
    figures = metrics.summary(metrics.routing_curve(SCORES, STRONG, WEAK))
    assert figures["cpt50"] == pytest.approx(20.0)  # accuracy 80 is reached at 20%
    assert figures["cpt80"] == pytest.approx(32.0)  # 92: between (30, 90) and (40, 100)
    assert figures["apgr"] == pytest.approx(0.8)
    assert figures["strong_share_at_95"] == pytest.approx(35.0)


def test_oracle_is_routellms_optimal_accuracy():
    """The oracle sends strong only the prompts it wins: 60 + min(share, 40) here."""
    oracle = metrics.oracle_curve(STRONG, WEAK)
    assert oracle.strong_pct == pytest.approx(HAND_SHARES)
    assert oracle.accuracy_pct == pytest.approx([60, 70, 80, 90] + [100] * 7)
    assert oracle.apgr() == pytest.approx(0.8)


def test_oracle_can_beat_the_strong_model():
    """Where the weak model is right and the strong one wrong, the oracle keeps the weak."""
    oracle = metrics.oracle_curve([True, False, True, True], [False, True, True, False])
    assert max(oracle.accuracy_pct) == 100.0 > oracle.strong_accuracy_pct == 75.0
    assert oracle.apgr() == pytest.approx(1.5)  # area 87.5 against weak 50 and strong 75


def test_tied_scores_keep_qcuts_duplicate_edges():
    """Where qcut refuses duplicate edges, the same eleven quantiles are kept, duplicates too."""
    scores = [0.0] * 6 + [1.0] * 4  # the gain itself: a perfect but tied score
    with pytest.raises(ValueError, match="Bin edges must be unique"):
        pd.qcut(scores, 10, retbins=True)
    assert metrics.thresholds(scores).tolist() == pytest.approx([0, 0, 0, 0, 0, 0, 0.4, 1, 1, 1, 1])
    curve = metrics.routing_curve(scores, STRONG, WEAK)
    assert curve.strong_pct == pytest.approx([0] + [40] * 4 + [100] * 6)
    assert curve.apgr() == pytest.approx(0.8)  # area (60 + 100) / 2 x 0.4 + 100 x 0.6 = 92
    assert curve.cpt(0.5) == pytest.approx(20.0)


def test_constant_scores_give_the_straight_line():
    """A constant score sends all or nothing: APGR 0.5 and CPT(50%) 50%, like random."""
    curve = metrics.routing_curve([0.3] * 10, STRONG, WEAK)
    assert set(curve.strong_pct) == {0.0, 100.0}
    assert curve.apgr() == pytest.approx(0.5)
    assert curve.cpt(0.5) == pytest.approx(50.0)


def test_random_router_recovers_half_the_gap_on_a_large_set():
    """Uniform random scores on 20,000 prompts give APGR ~0.5 and CPT(50%) ~50%."""
    labels = np.random.default_rng(11)
    strong = labels.random(20_000) < 0.8
    weak = labels.random(20_000) < 0.68
    curve = metrics.routing_curve(metrics.random_scores(20_000, seed=5), strong, weak)
    assert curve.apgr() == pytest.approx(0.5, abs=0.03)
    assert curve.cpt(0.5) == pytest.approx(50.0, abs=3)


def test_equal_models_have_no_gap_to_recover():
    """When both models score the same, APGR is undefined (nan), not a division error."""
    assert np.isnan(metrics.routing_curve(SCORES, WEAK, WEAK).apgr())


def test_bootstrap_interval_brackets_the_figure_and_repeats():
    """The 2.5-97.5% bootstrap interval contains the point figure; a seed repeats it."""
    rng = np.random.default_rng(2)
    strong = rng.random(400) < 0.85
    weak = rng.random(400) < 0.6
    scores = (strong & ~weak) + rng.normal(0, 0.8, 400)
    apgr = metrics.routing_curve(scores, strong, weak).apgr()
    spread = metrics.bootstrap(scores, strong, weak, resamples=200, seed=1)
    assert spread["apgr"][0] < apgr < spread["apgr"][1]
    assert spread == metrics.bootstrap(scores, strong, weak, resamples=200, seed=1)


@pytest.mark.parametrize(
    "scores, strong, weak",
    [([0.1, 0.2], [True], [False]), ([], [], []), ([0.1, float("nan")], [True, True], [1, 0])],
)
def test_mismatched_or_empty_inputs_are_refused(scores, strong, weak):
    """Columns of different lengths, empty columns and non-finite scores raise ValueError."""
    with pytest.raises(ValueError):
        metrics.routing_curve(scores, strong, weak)
