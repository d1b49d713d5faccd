"""Learned routing: training, scores, thresholds, evaluation, the router file, the shipped one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ims_kit.errors import InvalidInputError
from ims_kit.routing import (
    Router,
    RouterEvaluation,
    default_router,
    load_router,
    read_jsonl,
    train_router,
)
from ims_kit.routing.features import FeatureConfig, buckets, is_multiple_choice
from ims_kit.routing.router import DEFAULT_FILE

DATA = Path(__file__).parent.parent / "data" / "routing"
SMALL = {"features": FeatureConfig(bits=13), "folds": 3}  # fast: 2 x 8k buckets


def sample_rows() -> list[dict]:
    """About 340 prompts of the committed dev sets: every 10th GSM8K and every 40th MMLU row."""
    gsm8k = read_jsonl(DATA / "gsm8k_dev.jsonl")[::10]
    mmlu = read_jsonl(DATA / "mmlu_dev.jsonl")[::40]
    return gsm8k + mmlu


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return sample_rows()


@pytest.fixture(scope="module")
def router(rows) -> Router:
    return train_router(rows, **SMALL)


def synthetic(n: int = 90) -> list[dict]:
    """Proofs defeat the weak model and not the strong one; greetings defeat neither."""
    rows = []
    for i in range(n):
        hard = i % 3 == 0
        prompt = f"prove the theorem about primes, case {i}" if hard else f"say hello to user {i}"
        rows.append(
            {"prompt": prompt, "strong_correct": hard or i % 4 != 1, "weak_correct": not hard}
        )
    return rows


def test_a_router_learns_which_prompts_need_the_strong_model():
    """Prompts like those the weak model failed score above those it answered."""
    router = train_router(synthetic(), **SMALL)
    hard, easy = router.score(["prove the theorem about primes, case 999", "say hello to Ann"])
    assert hard > easy
    assert router.metadata["out_of_fold"]["apgr"] > 0.9


def test_score_takes_one_prompt_or_a_list(router):
    """A str gives one float; a list (or a Series) gives floats in [-1, 1], in order."""
    one = router.score("What is 17 * 23?")
    many = router.score(["What is 17 * 23?", "Name the capital of France."])
    assert isinstance(one, float) and many[0] == one
    assert all(-1 <= s <= 1 for s in many) and len(many) == 2
    assert router.score(pd.Series(["What is 17 * 23?"])) == [one]


@pytest.mark.parametrize("bad", [42, None, ["ok", 3]])
def test_score_refuses_what_is_not_text(router, bad):
    """Scoring a number, None or a list holding a non-string is an InvalidInputError."""
    with pytest.raises(InvalidInputError):
        router.score(bad)


def test_save_and_load_give_identical_scores(router, rows, tmp_path):
    """A saved and reloaded router scores every prompt exactly as the trained one."""
    path = router.save(tmp_path / "router.json")
    again = load_router(path)
    prompts = [r["prompt"] for r in rows[:60]]
    assert again.score(prompts) == router.score(prompts)
    assert again.threshold_for(target_quality=0.9) == router.threshold_for(target_quality=0.9)
    assert again.metadata == router.metadata


def test_the_router_file_is_versioned_json_without_pickle(router, tmp_path):
    """The file is JSON naming its format and version, with the calibration table inside."""
    document = json.loads(router.save(tmp_path / "r.json").read_text())
    assert (document["format"], document["version"]) == ("ims_kit.router", 1)
    assert len(document["calibration"]["accuracy"]) == 201
    assert document["metadata"]["out_of_fold"]["apgr"] == router.metadata["out_of_fold"]["apgr"]


def test_multiple_choice_prompts_use_their_own_bucket_range():
    """A prompt with option lines hashes like open text, shifted into the second range."""
    config = FeatureConfig(bits=12)
    question = "Which is a prime?\nA. 4\nB. 7\nAnswer:"
    assert is_multiple_choice(question) and not is_multiple_choice("Is 7 a prime? A. Yes")
    for mc, open_text in zip(
        buckets(question, config), buckets(question, FeatureConfig(bits=12, split_formats=False))
    ):
        assert mc.tolist() == (open_text + 4096).tolist()
    assert FeatureConfig(bits=12).size == 8192


def test_scores_do_not_depend_on_pythons_hash_seed(router, tmp_path):
    """Another process with another PYTHONHASHSEED scores a prompt identically."""
    path = router.save(tmp_path / "r.json")
    code = (
        "import sys; from ims_kit.routing import load_router;"
        f"print(repr(load_router({str(path)!r}).score('How many legs do 3 spiders have?')))"
    )
    env = os.environ | {"PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert float(out.stdout) == router.score("How many legs do 3 spiders have?")


def test_feature_hashes_are_pinned():
    """The featurizer's buckets never change silently (they would invalidate router files)."""
    words, chars = buckets("Add 2 apples", FeatureConfig(bits=10, char_ngrams=(3,)))
    assert words.tolist() == [973, 459, 502, 907, 458, 498]
    assert chars.tolist() == [378, 741, 319, 334, 717, 29, 683, 300, 319, 938, 864, 974]


def _fmix32(h: int) -> int:
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    return h ^ (h >> 16)


def test_feature_hashes_follow_the_documented_recipe():
    """A plain-Python rendering of the documented hashes gives the same buckets."""
    import zlib

    text, config = "Ein Häuschen, 3.5 km weit", FeatureConfig(bits=12)
    norm = "ein häuschen, 3.5 km weit"
    words = ["ein", "häuschen", "3", "5", "km", "weit"]
    expect_words = [
        _fmix32(zlib.crc32(f"w{n}:".encode() + " ".join(words[i : i + n]).encode())) % 4096
        for n in (1, 2)
        for i in range(len(words) - n + 1)
    ] + [_fmix32(zlib.crc32(b"w1:#0")) % 4096] * 2
    padded = f" {norm} "
    expect_chars = []
    for n in (2, 3, 4, 5):
        for i in range(len(padded) - n + 1):
            h = zlib.crc32(f"c{n}".encode())
            for ch in padded[i : i + n]:
                h = (h * 0x01000193 + ord(ch)) & 0xFFFFFFFF
            expect_chars.append(_fmix32(h) % 4096)
    got_words, got_chars = buckets(text, config)
    assert got_words.tolist() == expect_words
    assert got_chars.tolist() == expect_chars


def test_threshold_for_a_share_of_calls_sends_that_share(router, rows):
    """threshold_for_share(x) sends about x of the training prompts' OOF scores over it."""
    cal = router.calibration
    low, high = router.threshold_for_share(0.2), router.threshold_for_share(0.6)
    assert low > high
    assert router.threshold_for_share(0) == float("inf")
    assert router.threshold_for_share(1) == float("-inf")
    share_at = np.interp(-low, [-t for t in cal.threshold[1:-1]], cal.strong_share[1:-1])
    assert share_at == pytest.approx(0.2, abs=0.01)


def test_threshold_for_a_quality_target_uses_the_fewest_strong_calls(router):
    """The threshold for 95% quality is the smallest calibrated share whose accuracy reaches it."""
    cal = router.calibration
    share = cal.share_for_quality(0.95)
    i = cal.strong_share.index(share)
    assert cal.accuracy[i] >= 0.95 * cal.strong_accuracy > cal.accuracy[i - 1]
    assert router.threshold_for() == router.threshold_for(target_quality=0.95)
    assert router.threshold_for(target_quality=0.99) <= router.threshold_for(target_quality=0.9)


def test_expected_at_reads_the_curve_back(router):
    """The threshold for a share or a quality gives that share or at least that quality back."""
    share, _ = router.expected_at(router.threshold_for_share(0.3))
    assert share == pytest.approx(0.3, abs=0.01)
    assert router.expected_at(router.threshold_for(0.9))[1] >= 0.9 - 1e-9
    assert router.expected_at(float("inf")) == (
        0.0,
        pytest.approx(router.calibration.accuracy[0] / router.calibration.strong_accuracy),
    )
    assert router.expected_at(float("-inf"))[0] == 1.0


def test_a_target_the_weak_model_reaches_sends_nothing_strong(router):
    """If the weak model alone reaches the target, the threshold is inf: no strong call."""
    cal = router.calibration
    assert router.threshold_for(cal.weak_accuracy / cal.strong_accuracy - 0.01) == float("inf")


@pytest.mark.parametrize(
    "call, value, message",
    [
        ("share", 1.5, "between 0 and 1"),
        ("share", "all", "a number"),
        ("quality", -1, "positive"),
        ("quality", "high", "a number"),
        ("quality", 5.0, "out of reach"),
        ("expected", None, "a number"),
    ],
)
def test_thresholds_refuse_bad_targets(router, call, value, message):
    """A share outside 0-1, a non-number or an unreachable quality are refused."""
    method = {
        "share": router.threshold_for_share,
        "quality": router.threshold_for,
        "expected": router.expected_at,
    }[call]
    with pytest.raises(InvalidInputError, match=message):
        method(value)


def test_evaluate_gives_routellms_figures_with_references(router, rows):
    """evaluate returns the four figures, the curve, random, oracle; JSON, frame, HTML, plot."""
    result = router.evaluate(rows[::2], bootstrap=50)
    assert isinstance(result, RouterEvaluation) and result.n == len(rows[::2])
    assert 0 <= result.cpt50 <= 100 and result.apgr == pytest.approx(result.curve.apgr())
    assert result.oracle.apgr() >= result.apgr
    assert result.spread["apgr"][0] <= result.spread["apgr"][1]
    data = json.loads(json.dumps(result.to_dict()))
    assert set(data["router"]) == {"cpt50", "cpt80", "apgr", "strong_share_at_95"}
    assert len(data["curve"]) == 11
    assert set(result.to_frame()["router"]) == {"router", "random", "oracle"}
    assert "APGR" in result._repr_html_() and "oracle" in str(result)
    assert len(result.plot().data) == 3


def test_train_router_accepts_a_dataframe(rows):
    """A DataFrame with the three columns (more are ignored) trains like a list of dicts."""
    frame = pd.DataFrame(synthetic()).assign(extra=1)
    assert train_router(frame, **SMALL).score("say hello") < 0.5


BAD_ROWS = [
    ([], "no routing rows"),
    ([{"prompt": "a", "strong_correct": True}], "no field weak_correct"),
    ([{"prompt": 3, "strong_correct": True, "weak_correct": False}], "must be a string"),
    ([{"prompt": "a", "strong_correct": 1, "weak_correct": False}], "true or false"),
    ([{"prompt": "a", "strong_correct": "yes", "weak_correct": False}], "true or false"),
    (["a prompt"], "not a dict"),
    (
        [{"prompt": f"p{i}", "strong_correct": i % 2 == 0, "weak_correct": True} for i in range(9)],
        "one class only: the weak model is right",
    ),
    (
        [{"prompt": f"p{i}", "strong_correct": True, "weak_correct": False} for i in range(9)],
        "one class only: on all 9 prompts",
    ),
    (
        [
            {"prompt": f"p{i}", "strong_correct": False, "weak_correct": i % 2 == 0}
            for i in range(9)
        ],
        "never right where the weak one is wrong",
    ),
    ("data.jsonl", "read_jsonl"),
    (
        [{"prompt": f"p{i}", "strong_correct": i % 4 == 0, "weak_correct": i % 4 != 0}
         for i in range(30)],
        "not the better one here",
    ),
    (synthetic(12), "at least 20 different labelled prompts"),
]  # fmt: skip


@pytest.mark.parametrize("rows, message", BAD_ROWS)
def test_bad_training_data_is_a_clear_error(rows, message):
    """Empty data, missing fields, non-string prompts, non-bool labels, one class: refused."""
    with pytest.raises(InvalidInputError, match=message):
        train_router(rows)


def test_a_dataframe_without_a_label_column_is_refused():
    """A DataFrame missing weak_correct names the column."""
    with pytest.raises(InvalidInputError, match="no column weak_correct"):
        train_router(pd.DataFrame({"prompt": ["a"], "strong_correct": [True]}))


def test_an_unknown_training_option_is_refused():
    """A misspelt option is an InvalidInputError, not a silent default."""
    with pytest.raises(InvalidInputError, match="unexpected keyword"):
        train_router(synthetic(), foldz=3)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"C": -1}, "C must be a positive number"),
        ({"C": "x"}, "C must be a positive number"),
        ({"folds": 1}, "folds must be an integer >= 2"),
        ({"folds": "a"}, "folds must be an integer"),
        ({"folds": 100}, "too few for 100 folds"),
        ({"seed": -1}, "seed must be an integer >= 0"),
        ({"block_weights": (1.0,)}, "block_weights must be two"),
        ({"features": {"nope": 1}}, "unknown feature option nope"),
        ({"features": {"bits": 40}}, "bits must be an integer from 8 to 20"),
        ({"features": {"char_ngrams": [0]}}, "char_ngrams must be n-gram sizes"),
        ({"features": {"surface": ["x"]}}, "unknown surface measure x"),
        ({"features": "big"}, "features must be a FeatureConfig or a dict"),
        ({"metadata": "hi"}, "metadata must be a dict"),
        ({"metadata": {"x": float("nan")}}, "JSON values only"),
        ({"metadata": {"x": object()}}, "JSON values only"),
    ],
)
def test_bad_training_options_are_clear_errors(options, message):
    """Every option is checked before any fitting: one InvalidInputError naming it."""
    with pytest.raises(InvalidInputError, match=message):
        train_router(synthetic(), **options)


def test_a_router_trained_on_few_rows_says_so():
    """Under 200 prompts, or no better than random out of fold: a warning, kept in the file."""
    rows = [{"prompt": f"question number {i}", "strong_correct": i % 2 == 0,
             "weak_correct": i % 4 == 0} for i in range(40)]  # fmt: skip
    with pytest.warns(UserWarning) as caught:
        router = train_router(rows, folds=2)
    said = [str(w.message) for w in caught]
    assert any("only 40 labelled prompts" in m for m in said)
    assert router.metadata["warnings"] == said


def test_evaluating_on_training_prompts_says_so(router, rows):
    """A router remembers fingerprints of the prompts it learned: evaluated on them, the
    figures carry a note; on other prompts they do not."""
    seen = router.evaluate(rows)
    assert seen.trained_on_overlap == len(rows)
    assert "trained on" in seen.caveat and seen.caveat in str(seen)
    assert seen.to_dict()["trained_on_overlap"] == len(rows)
    unseen = read_jsonl(DATA / "gsm8k_dev.jsonl")[1::10]
    fresh = router.evaluate(unseen)
    assert fresh.trained_on_overlap == 0 and fresh.caveat is None and "note" not in str(fresh)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"bootstrap": -1}, "bootstrap must be an integer >= 0"),
    ({"bootstrap": 1.5}, "bootstrap must be an integer"),
    ({"seed": "x"}, "seed must be an integer"),
])  # fmt: skip
def test_evaluate_checks_its_arguments(router, rows, kwargs, message):
    with pytest.raises(InvalidInputError, match=message):
        router.evaluate(rows, **kwargs)


def test_reading_and_writing_files_fail_clearly(router, tmp_path, monkeypatch):
    """Missing, folder, non-UTF-8 data files; unwritable router paths: InvalidInputError, and a
    failed save leaves the file that was there whole."""
    (tmp_path / "latin.jsonl").write_bytes(b'{"prompt": "caf\xe9"}\n')
    for path, message in [
        (tmp_path / "none.jsonl", "no file at"),
        (tmp_path, "is a folder"),
        (tmp_path / "latin.jsonl", "not UTF-8"),
    ]:
        with pytest.raises(InvalidInputError, match=message):
            read_jsonl(path)
    with pytest.raises(InvalidInputError, match="cannot write"):
        router.save(tmp_path / "no" / "such" / "r.json")
    with pytest.raises(InvalidInputError, match="is a folder"):
        router.save(tmp_path)
    for bad in (None, 5):
        with pytest.raises(InvalidInputError, match="named by a path"):
            load_router(bad)
    kept = router.save(tmp_path / "r.json")
    before = kept.read_bytes()

    def disk_full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("ims_kit.routing.storage.os.replace", disk_full)
    with pytest.raises(InvalidInputError, match="No space left"):
        router.save(kept)
    assert kept.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latin.jsonl", "r.json"]


def _damage(document: dict, how: str) -> dict:
    if how == "format":
        document["format"] = "someone.else"
    elif how == "version":
        document["version"] = 99
    elif how == "array":
        document["model"]["weights"]["weak"]["zlib_base64"] = "not base64!"
    elif how == "shape":
        document["features"]["bits"] = 12
    elif how == "section":
        del document["calibration"]
    elif how == "kind":
        document["model"]["kind"] = "neural"
    elif how == "block_weights":
        document["model"]["block_weights"] = [1.0]
    elif how == "surface_std":
        document["model"]["surface_std"] = [0.0] * len(document["model"]["surface_std"])
    elif how == "ngrams":
        document["features"]["char_ngrams"] = [0]
    elif how == "seen":
        document["seen"] = {"dtype": "<u4"}
    return document


@pytest.mark.parametrize(
    "how",
    ["format", "version", "array", "shape", "section", "kind", "block_weights", "surface_std",
     "ngrams", "seen"],
)  # fmt: skip
def test_a_damaged_or_foreign_router_file_is_refused(router, tmp_path, how):
    """Each kind of damage to a router file is one InvalidInputError naming the file."""
    path = router.save(tmp_path / "r.json")
    path.write_text(json.dumps(_damage(json.loads(path.read_text()), how)))
    with pytest.raises(InvalidInputError, match="r.json|router file"):
        load_router(path)


@pytest.mark.parametrize("content", ["not json at all", "[1, 2]", '{"format": 3}'])
def test_a_file_that_is_not_a_router_is_refused(tmp_path, content):
    """Text, a JSON list or a JSON object of another kind is not a router file."""
    path = tmp_path / "x.json"
    path.write_text(content)
    with pytest.raises(InvalidInputError, match="not"):
        load_router(path)


def test_a_missing_router_file_is_refused(tmp_path):
    """A path with no file is an InvalidInputError saying so."""
    with pytest.raises(InvalidInputError, match="no router file"):
        load_router(tmp_path / "missing.json")


def test_the_shipped_router_loads_once_and_says_what_it_was_trained_on():
    """default_router() is cached, small, trained on both dev sets and carries the attribution."""
    router = default_router()
    assert default_router() is router
    path = Path(__file__).parent.parent / "ims_kit" / "routing" / DEFAULT_FILE
    assert path.stat().st_size < 2_000_000
    assert router.metadata["rows"] == 905 + 9780
    attribution = router.metadata["attribution"]
    assert "Apache" in attribution and "RouteLLM" in attribution
    assert router.metadata["out_of_fold"]["apgr"] > 0.6


def test_the_shipped_router_scores_without_scikit_learn_or_pandas(tmp_path):
    """Loading and scoring the shipped router imports neither scikit-learn, scipy nor pandas."""
    code = (
        "import sys, json; from ims_kit.routing import default_router;"
        "r = default_router(); s = r.score('What is 17 * 23?'); t = r.threshold_for(0.95);"
        "print(json.dumps([s, t, sorted({m.split('.')[0] for m in sys.modules}"
        " & {'sklearn', 'scipy', 'pandas'})]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    score, threshold, heavy = json.loads(out.stdout)
    assert heavy == [] and -1 <= score <= 1 and -1 <= threshold <= 1


def test_importing_routing_loads_no_numpy():
    """`import ims_kit.routing` is free: numpy loads on first use of a routing name."""
    code = "import sys, ims_kit, ims_kit.routing; print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
