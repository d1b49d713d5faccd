"""The Kit facade: recommend over the seeded registry with its events, checks before a call,
metrics."""

from __future__ import annotations

import pytest

from ims_kit.errors import InvalidInputError, NoModelAvailable


def test_recommend_by_cost_picks_the_cheapest_feasible_seeded_model(seeded):
    """The cost strategy's choice is the lowest estimated cost among active models."""
    rec = seeded.recommend("Summarise this paragraph about tides.", strategy="cost")
    costs = [c.estimated_cost_usd for c in rec.ranked if c.estimated_cost_usd is not None]
    assert rec.ranked[0].estimated_cost_usd == min(costs)
    assert rec.model.active


def test_recommend_appends_model_queried_with_strategy_and_constraints(seeded):
    """Every recommendation is a model.queried event for the chosen model (it feeds metrics)."""
    rec = seeded.recommend(
        "hello", strategy="performance", min_context_window=50_000, vendors="Google"
    )
    event = seeded.events.recent(kind="model.queried")[0]
    assert event.subject == rec.model.model_id and rec.model.vendor == "Google"
    assert event.payload["strategy"] == "performance"
    assert event.payload["constraints"] == {"min_context_window": 50_000, "vendors": ["Google"]}
    assert seeded.metrics()[f"model_queries:{rec.model.model_id}"] == 1


def test_strategy_and_min_context_default_from_the_environment(seeded, monkeypatch):
    """IMS_STRATEGY and IMS_MIN_CONTEXT are the defaults when no argument is given."""
    monkeypatch.setenv("IMS_STRATEGY", "performance")
    monkeypatch.setenv("IMS_MIN_CONTEXT", "300000")
    rec = seeded.recommend("hi")
    assert rec.strategy == "performance" and rec.request.min_context_window == 300_000
    assert all(c.model.context_window >= 300_000 for c in rec.ranked)


def test_bad_ims_min_context_is_a_clear_error(seeded, monkeypatch):
    """A non-numeric IMS_MIN_CONTEXT names the variable."""
    monkeypatch.setenv("IMS_MIN_CONTEXT", "lots")
    with pytest.raises(InvalidInputError, match="IMS_MIN_CONTEXT"):
        seeded.recommend("hi")


@pytest.mark.parametrize("prompt", ["", "   ", None, 42])
def test_an_empty_or_non_string_prompt_is_refused(seeded, prompt):
    """recommend() needs a prompt to place, as ask() does: nothing is chosen for nothing."""
    with pytest.raises(InvalidInputError, match="prompt"):
        seeded.recommend(prompt)


def test_empty_registry_says_to_run_init(kit):
    """With no models the error says what to do."""
    with pytest.raises(NoModelAvailable, match="ims init"):
        kit.recommend("hi")


def test_imported_catalog_is_inactive_and_does_not_change_the_choice(seeded):
    """import_catalog adds ~2,000 priced inactive models; active choices stay the same."""
    before = seeded.recommend("hi").model.model_id
    result = seeded.registry.import_catalog()
    assert len(result.added) > 1_000
    assert seeded.recommend("hi").model.model_id == before
    assert seeded.registry.import_catalog().added == ()
    everything = seeded.recommend("hi", include_inactive=True)
    assert len(everything.ranked) > 1_000
