"""Strategy "learned": the strong model when the router's score reaches the threshold, the
cheap one otherwise, within the constraints; the score and threshold in the reasons."""

from __future__ import annotations

import pytest

from ims_kit.errors import InvalidInputError
from ims_kit.records import ModelSpec
from ims_kit.selector import Request, rank

MODELS = [
    ModelSpec(model_id="cheap", vendor="A", provider="simulated", context_window=100_000,
              cost_per_mil_in=0.1, cost_per_mil_out=0.4, quality=50),
    ModelSpec(model_id="mid", vendor="A", provider="simulated", context_window=100_000,
              cost_per_mil_in=1.0, cost_per_mil_out=4.0, quality=70),
    ModelSpec(model_id="strong", vendor="B", provider="simulated", context_window=100_000,
              cost_per_mil_in=5.0, cost_per_mil_out=15.0, quality=90),
]  # fmt: skip


def learned(score, threshold, **kw):
    return Request(prompt_tokens=100, strategy="learned", route_score=score,
                   route_threshold=threshold, route_basis="for 95%", **kw)  # fmt: skip


def test_a_score_at_the_threshold_goes_to_the_strong_model():
    rec = rank(MODELS, learned(0.4, 0.4))
    assert [c.model_id for c in rec.ranked] == ["strong", "cheap", "mid"]
    assert rec.ranked[0].reasons[0] == "router score 0.400 >= threshold 0.400 (for 95%)"
    assert rec.ranked[0].score == 0.4


def test_a_score_below_goes_to_the_cheap_model_with_the_strong_as_fallback():
    rec = rank(MODELS, learned(0.1, 0.4))
    assert [c.model_id for c in rec.ranked] == ["cheap", "strong", "mid"]
    assert "the cheap model" in rec.ranked[0].reasons
    assert rec.ranked[1].reasons[0] == "the strong model, as a fallback"
    # the pair carries the router's score; the rest are ranked by cost, with no score
    assert [c.score for c in rec.ranked] == [0.1, 0.1, None]


def test_constraints_and_open_circuits_choose_the_pair():
    """The strong and cheap candidates are those the constraints leave."""
    rec = rank(MODELS, learned(0.9, 0.4, vendors=("A",)))
    assert rec.ranked[0].model_id == "mid"  # the strongest vendor-A model
    rec = rank(MODELS, learned(0.9, 0.4), open_circuits={"strong": "soon"})
    assert rec.ranked[0].model_id == "mid"
    rec = rank(MODELS[:1], learned(0.9, 0.4))
    assert [c.model_id for c in rec.ranked] == ["cheap"]  # one model: it is both


def test_without_a_score_the_strategy_is_a_clear_error():
    with pytest.raises(InvalidInputError, match="router score"):
        rank(MODELS, Request(strategy="learned"))


class StubRouter:
    """Scores by a keyword; its thresholds say what they were asked."""

    def __init__(self):
        self.asked = []

    def score(self, prompt):
        return 0.9 if "prove" in prompt else 0.1

    def threshold_for(self, quality):
        self.asked.append(("quality", quality))
        return 0.5

    def threshold_for_share(self, share):
        self.asked.append(("share", share))
        return 0.5


def test_the_kit_scores_the_prompt_with_its_router(seeded):
    """recommend(strategy='learned'): the router's score of the latest user turn against the
    threshold for the target quality (0.95 unless given) or a share of strong calls."""
    router = StubRouter()
    seeded.use_router(router)
    hard = seeded.recommend("prove that sqrt(2) is irrational", strategy="learned")
    easy = seeded.recommend("say hi", strategy="learned", target_quality=0.9)
    assert hard.model.quality > easy.model.quality
    assert hard.ranked[0].reasons[0].startswith("router score 0.900 >= threshold 0.500")
    seeded.recommend("say hi", strategy="learned", strong_share=0.3)
    assert router.asked == [("quality", 0.95), ("quality", 0.9), ("share", 0.3)]
    answer = seeded.ask("prove it", strategy="learned", provider="simulated")
    assert answer.model_id == hard.model.model_id


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strategy": "learned", "target_quality": 0.9, "strong_share": 0.2}, "not both"),
        ({"strategy": "learned", "strong_share": 2}, "from 0 to 1"),
        ({"strategy": "learned", "target_quality": -1}, "share of the strong"),
        ({"strategy": "cost", "target_quality": 0.9}, "apply with strategy='learned'"),
    ],
)
def test_bad_router_settings_are_clear_errors(seeded, kwargs, message):
    seeded.use_router(StubRouter())
    with pytest.raises(InvalidInputError, match=message):
        seeded.recommend("hi", **kwargs)
    with pytest.raises(InvalidInputError, match="Router or its file"):
        seeded.use_router(42)


GSM8K_LIKE = (
    "Janet has 3 times as many marbles as Tom. Tom has 12 more than Sue, who has 9."
    " How many marbles do the three of them have together?"
)


def test_the_shipped_router_routes_by_its_calibrated_threshold(seeded):
    """With no router set, the shipped one scores the prompt; the threshold is its calibration's
    for 95% of the strong model's quality, and the choice follows score >= threshold."""
    from ims_kit.routing import default_router

    rec = seeded.recommend(GSM8K_LIKE, strategy="learned")
    shipped = default_router()
    score, threshold = shipped.score(GSM8K_LIKE), shipped.threshold_for(0.95)
    said = rec.ranked[0].reasons[0]
    assert said.startswith(f"router score {score:.3f} {'>=' if score >= threshold else '<'}")
    assert f"threshold {threshold:.3f}" in said
    role = "the strong model" if score >= threshold else "the cheap model"
    assert rec.ranked[0].reasons[1] == role
    assert rec.model.quality > rec.ranked[1].model.quality or role == "the cheap model"


def test_your_router_replaces_the_shipped_one_by_a_setting(seeded, monkeypatch, tmp_path):
    """IMS_ROUTER names a saved router: a fresh Kit routes with it; a bad path is a clear
    error when the strategy first needs it."""
    import ims_kit
    from ims_kit.routing import train_router

    rows = [
        {"prompt": f"prove lemma {i}" if i % 2 else f"say hi {i}",
         "strong_correct": True, "weak_correct": i % 2 == 0}
        for i in range(40)
    ]  # fmt: skip
    path = train_router(rows, folds=2).save(tmp_path / "mine.json")
    monkeypatch.setenv("IMS_ROUTER", str(path))
    kit = ims_kit.open()
    assert kit.router.metadata["rows"] == 40
    hard = kit.recommend("prove lemma 99", strategy="learned")
    easy = kit.recommend("say hi 98", strategy="learned")
    assert hard.model.quality > easy.model.quality
    monkeypatch.setenv("IMS_ROUTER", str(tmp_path / "missing.json"))
    with pytest.raises(InvalidInputError, match="no router file"):
        ims_kit.open().recommend("hi", strategy="learned")


def test_ims_recommend_learned_shows_score_and_threshold(run, seeded):
    """`ims recommend --strategy learned --target-quality 0.9` prints the router's reason."""
    result = run("recommend", "--prompt", GSM8K_LIKE, "--strategy", "learned",
                 "--target-quality", "0.9")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "router score" in result.output and "threshold" in result.output


def test_a_router_trained_on_a_pair_routes_between_them(seeded):
    """A router whose metadata names the strong and weak model it learned (as one trained on
    your history does) routes between those two when the constraints allow both."""
    router = StubRouter()
    router.metadata = {"strong_model": "gpt-4o", "weak_model": "gpt-4o-mini"}
    seeded.use_router(router)
    hard = seeded.recommend("prove it", strategy="learned")
    easy = seeded.recommend("say hi", strategy="learned")
    assert [c.model_id for c in hard.ranked[:2]] == ["gpt-4o", "gpt-4o-mini"]
    assert [c.model_id for c in easy.ranked[:2]] == ["gpt-4o-mini", "gpt-4o"]
    assert "the pair the router was trained on" in hard.ranked[0].reasons[1]
    other = seeded.recommend("prove it", strategy="learned", vendors=["Anthropic"])
    assert other.model.vendor == "Anthropic"  # the pair is not allowed: the usual pairing
    assert "trained on" not in other.ranked[0].reasons[1]


def test_ims_router_names_itself_in_errors_and_takes_default(seeded, monkeypatch):
    import ims_kit

    monkeypatch.setenv("IMS_ROUTER", "/no/such/router.json")
    with pytest.raises(InvalidInputError, match="^IMS_ROUTER: no router file"):
        ims_kit.open().recommend("hi", strategy="learned")
    monkeypatch.setenv("IMS_ROUTER", "default")
    assert ims_kit.open().recommend("hi", strategy="learned").ranked[0].score is not None


def test_ims_recommend_takes_a_share_of_strong_calls(run, seeded):
    """--strong-share 1 sends every prompt to the strong model, 0 none."""
    strong = run("recommend", "--prompt", "say hi", "--strategy", "learned", "--strong-share", "1")
    cheap = run("recommend", "--prompt", "say hi", "--strategy", "learned", "--strong-share", "0")
    assert "(100% strong calls); the strong model" in strong.output
    assert "(0% strong calls); the cheap model" in cheap.output
