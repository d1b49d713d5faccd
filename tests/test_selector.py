"""The selector is pure: hand-built catalogues whose right answers are worked out by hand."""

from __future__ import annotations

import pytest

from ims_kit.analysis import analyze
from ims_kit.errors import InvalidInputError, NoModelAvailable
from ims_kit.records import ModelSpec
from ims_kit.selector import LATENCY_PRIOR_MS, ModelStats, Request, rank


def spec(model_id, vendor, quality, price, ctx, caps=(), active=True):
    cin, cout = price if price else (None, None)
    return ModelSpec(
        model_id=model_id,
        vendor=vendor,
        provider="simulated",
        context_window=ctx,
        cost_per_mil_in=cin,
        cost_per_mil_out=cout,
        capabilities=caps,
        quality=quality,
        active=active,
    )


# Costs for 1,000 tokens in and 500 out, by hand:
#   A (10/30): 0.025   B (1/4): 0.003   C (0.1/0.4): 0.0003   F (0.05/0.2): 0.00015   D unpriced
CATALOGUE = [
    spec("A", "X", 90, (10, 30), 200_000, ("tools", "vision")),
    spec("B", "X", 86, (1, 4), 128_000, ("tools",)),
    spec("C", "Y", 60, (0.1, 0.4), 1_000_000, ("vision",)),
    spec("D", "Y", 70, None, 128_000),
    spec("E", "Z", 95, (20, 80), 200_000, active=False),
    spec("F", "Z", 40, (0.05, 0.2), 16_000),
]
STATS = {"C": ModelStats(40, 0.99, 300.0), "B": ModelStats(25, 0.96, 800.0)}


def order(strategy, stats=None, **kw):
    request = Request(prompt_tokens=1_000, expected_output_tokens=500, strategy=strategy, **kw)
    return [c.model_id for c in rank(CATALOGUE, request, stats=stats).ranked]


@pytest.mark.parametrize(
    "strategy, expected",
    [
        ("cost", ["F", "C", "B", "A", "D"]),
        ("performance", ["A", "B", "D", "C", "F"]),
        ("balanced", ["B", "A", "D", "C", "F"]),
        ("latency", ["C", "B", "F", "A", "D"]),
    ],
)
def test_each_strategy_ranks_the_small_catalogue_as_worked_out_by_hand(strategy, expected):
    """Each strategy's order matches the hand computation in the comments above."""
    assert order(strategy, stats=STATS) == expected


def test_cost_scores_are_the_estimated_costs():
    """The cost strategy's score is input x price + expected output x price."""
    rec = rank(CATALOGUE, Request(prompt_tokens=1_000, expected_output_tokens=500))
    costs = {c.model_id: c.estimated_cost_usd for c in rec.ranked}
    assert costs == pytest.approx({"F": 0.00015, "C": 0.0003, "B": 0.003, "A": 0.025, "D": None})


def test_unpriced_is_never_picked_as_cheapest_and_says_so():
    """An unpriced model comes after every priced one under cost and balanced."""
    only_d_and_a = [m for m in CATALOGUE if m.model_id in {"A", "D"}]
    for strategy in ("cost", "balanced"):
        rec = rank(only_d_and_a, Request(strategy=strategy, balanced_margin=50))
        assert rec.model.model_id == "A"
        assert any("unpriced" in r for r in rec.ranked[-1].reasons)


def test_balanced_margin_is_a_parameter_and_shown_in_reasons():
    """With a margin of 2 only A is near the best; with 35, C and D are too."""
    assert order("balanced", balanced_margin=2)[0] == "A"
    assert order("balanced", balanced_margin=35) == ["C", "B", "A", "D", "F"]
    rec = rank(CATALOGUE, Request(strategy="balanced"))
    assert "within 5 of the best feasible 90" in rec.ranked[0].reasons[0]


def test_performance_ties_are_broken_by_success_rate_then_latency():
    """Equal quality: the more reliable model first, then the faster one."""
    twins = [
        spec("P", "X", 80, (1, 1), 50_000),
        spec("Q", "X", 80, (1, 1), 50_000),
        spec("R", "X", 80, (1, 1), 50_000),
    ]
    stats = {
        "P": ModelStats(10, 0.80, 100.0),
        "Q": ModelStats(10, 0.99, 900.0),
        "R": ModelStats(10, 0.99, 400.0),
    }
    ranked = rank(twins, Request(strategy="performance"), stats=stats).ranked
    assert [c.model_id for c in ranked] == ["R", "Q", "P"]


def test_latency_without_observations_uses_the_stated_prior():
    """Models never observed are ranked at the prior, and the reason says so."""
    rec = rank(CATALOGUE, Request(strategy="latency"))
    assert rec.ranked[0].score == LATENCY_PRIOR_MS
    assert "no observations" in rec.ranked[0].reasons[0]


def test_auto_picks_a_stronger_model_for_a_hard_coding_prompt():
    """'What is 2+2?' gets the cheapest model; a multi-step refactoring task a strong one."""
    easy = "What is 2+2?"
    hard = (
        "Refactor this parser step by step: first split tokenizing from parsing, then "
        "add unit tests, and compare the trade-offs of a recursive-descent design.\n"
        "```python\ndef parse(text):\n    return eval(text)\n```"
    )
    picks = {}
    for name, prompt in (("easy", easy), ("hard", hard)):
        request = Request(prompt_tokens=len(prompt) // 4, strategy="auto", task=analyze(prompt))
        picks[name] = rank(CATALOGUE, request).ranked[0]
    assert picks["easy"].model_id == "F"
    assert picks["hard"].model_id == "B"  # cheapest with quality >= 75
    assert picks["hard"].model.quality > picks["easy"].model.quality
    assert "code" in picks["hard"].reasons[0] and "hard" in picks["hard"].reasons[0]


@pytest.mark.parametrize(
    "kwargs, kept, constraint",
    [
        ({"min_context_window": 100_000}, ["A", "B", "C", "D"], "context window"),
        ({"capabilities": ("vision",)}, ["A", "C"], "capabilities"),
        ({"vendors": ("y",)}, ["C", "D"], "vendor"),
        ({"exclude_vendors": ("X", "Z")}, ["C", "D"], "vendor"),
        ({"max_cost_usd": 0.001}, ["C", "F"], "max cost"),
        ({"prompt_tokens": 150_000}, ["A", "C"], "context window"),
        ({"include_inactive": True}, ["A", "B", "C", "D", "E", "F"], None),
    ],
)
def test_constraints_exclude_the_right_models_with_the_right_reason(kwargs, kept, constraint):
    """Each constraint keeps exactly the feasible models and names itself on the others."""
    request = Request(**({"prompt_tokens": 1_000} | kwargs))
    rec = rank(CATALOGUE, request)
    assert sorted(c.model_id for c in rec.ranked) == kept
    excluded = {c.model_id: c.excluded_by for c in rec.excluded}
    assert set(excluded) == {m.model_id for m in CATALOGUE} - set(kept)
    if constraint:
        assert constraint in excluded.values()
        assert excluded["E"] == "inactive"


def test_context_requirement_never_below_prompt_plus_output():
    """A huge prompt raises the required window above the configured minimum."""
    request = Request(prompt_tokens=150_000, expected_output_tokens=500, min_context_window=10)
    assert request.required_context == 150_500
    rec = rank(CATALOGUE, request)
    reason = {c.model_id: c.reasons[0] for c in rec.excluded}["B"]
    assert reason == "context window 128,000 < required 150,500"


def test_open_circuits_are_excluded_with_their_retry_time():
    """A model whose breaker is open is not a candidate; the reason says until when."""
    rec = rank(CATALOGUE, Request(), open_circuits={"F": "2026-11-24T10:00:00+00:00"})
    assert rec.model.model_id == "C"
    assert {c.model_id: c.reasons[0] for c in rec.excluded}["F"] == (
        "circuit open until 2026-11-24T10:00:00+00:00"
    )


def test_nothing_feasible_says_which_constraint_excluded_how_many():
    """NoModelAvailable counts the models each constraint removed."""
    with pytest.raises(NoModelAvailable) as err:
        rank(CATALOGUE, Request(min_context_window=2_000_000))
    assert err.value.excluded_by == {"inactive": 1, "context window": 5}
    assert "5 by context window" in str(err.value)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"strategy": "cheapest"}, "unknown strategy 'cheapest'; known: cost, performance"),
        ({"min_context_window": -1}, "non-negative"),
        ({"min_context_window": 1.5}, "non-negative"),
        ({"capabilities": ("telepathy",)}, "unknown capability 'telepathy'"),
        ({"vendors": ("Acme",)}, "unknown vendor 'Acme'; known: X, Y, Z"),
        ({"max_cost_usd": -1}, "max_cost_usd"),
    ],
)
def test_bad_requests_name_the_value_and_the_accepted_ones(kwargs, match):
    """Invalid strategy, window, capability, vendor or budget raise InvalidInputError."""
    with pytest.raises(InvalidInputError, match=match):
        rank(CATALOGUE, Request(**kwargs))


def test_recommendation_frame_lists_every_model_kept_or_not():
    """to_frame() has one row per model with rank, score, cost and why."""
    frame = rank(CATALOGUE, Request(prompt_tokens=1_000)).to_frame()
    assert len(frame) == len(CATALOGUE)
    assert list(frame.columns) == [
        "rank",
        "model_id",
        "vendor",
        "score",
        "estimated_cost_usd",
        "kept",
        "why",
    ]
    assert frame.set_index("model_id").loc["E", "why"].startswith("inactive")


@pytest.mark.parametrize(
    "kwargs",
    [{"expected_output_tokens": -5}, {"prompt_tokens": -1}, {"balanced_margin": float("nan")}],
)
def test_negative_sizes_and_nan_margins_are_refused(kwargs):
    """A negative token count would rank models by a negative cost: refused."""
    with pytest.raises(InvalidInputError):
        rank(CATALOGUE, Request(**kwargs))
