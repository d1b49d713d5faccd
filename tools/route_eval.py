"""Reproduce every figure of docs/ROUTING.md and rebuild the shipped router.

    python tools/route_eval.py [--data DIR] [--seeds 3] [--bootstrap 1000] [--quick]

DIR holds gsm8k_dev.jsonl and mmlu_dev.jsonl (default ../shared/routing beside the
repository; data/routing holds the same files). Every router is scored on prompts it never
saw: 5-fold out-of-fold scores (stratified by outcome pair, identical prompts in one fold),
or the other data set (cross-domain). Intervals are the 2.5-97.5 percentiles of 1,000
bootstrap resamples of the prompts; "over fold splits" repeats the cross-validation with
other seeds. The run rewrites the block between the route_eval markers in docs/ROUTING.md and
ims_kit/routing/default_router.json (trained on both sets). About 50 minutes on 2 shared cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import route_candidates  # noqa: E402

from ims_kit.routing import metrics, read_jsonl, train_router  # noqa: E402
from ims_kit.routing import training as T  # noqa: E402
from ims_kit.routing.data import Outcomes, check_rows  # noqa: E402
from ims_kit.routing.features import FeatureConfig  # noqa: E402
from ims_kit.routing.router import DEFAULT_FILE  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "routing"
SETS = {"GSM8K": "gsm8k_dev.jsonl", "MMLU": "mmlu_dev.jsonl"}
ROUTELLM = {  # the best published router of RouteLLM (GPT-4 vs Mixtral), and its random
    "MMLU": {"cpt50": 35.40, "apgr": 0.603, "random_cpt50": 50.07, "random_apgr": 0.500},
    "GSM8K": {"cpt50": 33.64, "apgr": 0.622, "random_cpt50": 50.00, "random_apgr": 0.497},
}
ATTRIBUTION = (
    "Trained on data derived from RouteLLM (https://github.com/lm-sys/RouteLLM, LMSYS;"
    " commit 0b64fdafe049e596a3f5657c219329f24af24198, files"
    " routellm/evals/gsm8k/gsm8k_responses.csv and routellm/evals/mmlu/responses/"
    "mmlu_<subject>.csv), decontaminated as RouteLLM does, licensed under the Apache License,"
    " Version 2.0 (http://www.apache.org/licenses/LICENSE-2.0); see data/routing/README.md."
)
FIGS = ("cpt50", "cpt80", "apgr", "strong_share_at_95")
BEGIN, END = "<!-- route_eval:begin -->", "<!-- route_eval:end -->"


def log(message: str) -> None:
    print(f"route_eval: {message}", file=sys.stderr, flush=True)


def load(folder: Path) -> dict[str, Outcomes]:
    return {name: check_rows(read_jsonl(folder / file)) for name, file in SETS.items()}


def joined(sets: dict[str, Outcomes]) -> tuple[Outcomes, dict[str, np.ndarray]]:
    """Both sets as one, and where each one's rows are."""
    parts = list(sets.values())
    both = Outcomes(
        sum((p.prompts for p in parts), ()),
        sum((p.strong_correct for p in parts), ()),
        sum((p.weak_correct for p in parts), ()),
    )
    where, start = {}, 0
    for name, part in sets.items():
        where[name] = np.arange(start, start + len(part))
        start += len(part)
    return both, where


def figures(scores, outcomes: Outcomes) -> dict[str, float]:
    curve = metrics.routing_curve(scores, outcomes.strong_correct, outcomes.weak_correct)
    return metrics.summary(curve)


def with_spread(scores, outcomes: Outcomes, resamples: int) -> dict[str, tuple]:
    """Each figure with its bootstrap interval: {name: (value, low, high)}."""
    point = figures(scores, outcomes)
    spread = metrics.bootstrap(
        scores, outcomes.strong_correct, outcomes.weak_correct, resamples=resamples, seed=0
    )
    return {k: (point[k], *spread[k]) for k in FIGS}


def chosen_oof(outcomes: Outcomes, seed: int, options: T.TrainOptions | None = None):
    opts = dataclasses.replace(options or T.TrainOptions(), seed=seed)
    return T.out_of_fold(T.featurize(outcomes.prompts, opts.features), outcomes, opts)


def cross_scores(train: Outcomes, test: Outcomes, options: T.TrainOptions) -> np.ndarray:
    """Scores of ``test`` from a scorer fitted on all of ``train``."""
    scorer = T.fit_scorer(T.featurize(train.prompts, options.features), train, options)
    return np.array(scorer.scores(T.featurize(test.prompts, options.features)))


def settings(sets, both, where, options: T.TrainOptions, seeds: list[int]) -> dict:
    """Scores of one recipe in the six settings: per set CV, joint CV per set, cross-domain."""
    out = {f"{name} CV": [chosen_oof(o, s, options) for s in seeds] for name, o in sets.items()}
    joint = [chosen_oof(both, s, options) for s in seeds]
    for name, idx in where.items():
        out[f"joint -> {name}"] = [j[idx] for j in joint]
    out["MMLU -> GSM8K"] = [cross_scores(sets["MMLU"], sets["GSM8K"], options)]
    out["GSM8K -> MMLU"] = [cross_scores(sets["GSM8K"], sets["MMLU"], options)]
    return out


def target_of(setting: str) -> str:
    """The data set a setting is evaluated on: "MMLU CV" -> MMLU, "MMLU -> GSM8K" -> GSM8K."""
    return setting.removesuffix(" CV").split()[-1]


def candidate_oof(outcomes: Outcomes, seed: int) -> dict[str, np.ndarray]:
    """Out-of-fold scores of every candidate, on the chosen featurizer's feature rows."""
    options = T.TrainOptions()
    features = T.featurize(outcomes.prompts, options.features)
    strong = np.asarray(outcomes.strong_correct)
    weak = np.asarray(outcomes.weak_correct)
    names = [*route_candidates.CANDIDATES, "chosen (refit)"]
    out = {name: np.zeros(len(outcomes)) for name in names}
    for train, test in T.fold_indices(outcomes, options.folds, seed):
        base = T.unfitted_scorer([features[i] for i in train], options)
        X = T.feature_rows([features[i] for i in train], base)
        Xt = T.feature_rows([features[i] for i in test], base)
        prompts = [outcomes.prompts[i] for i in test]
        extra = {"train_prompts": [outcomes.prompts[i] for i in train]}
        for name, fn in route_candidates.CANDIDATES.items():
            kwargs = extra if fn is route_candidates.boosted_hand_features else {}
            out[name][test] = fn(X, strong[train], weak[train], Xt, prompts, **kwargs)
        out["chosen (refit)"][test] = route_candidates.two_heads(
            X, strong[train], weak[train], Xt, prompts
        )
    knn = "similarity-weighted kNN (k=100) over the TF-IDF"
    out["ensemble: ranks of chosen + kNN"] = route_candidates.rank_mean(
        out["chosen (refit)"], out[knn]
    )
    out["prompt length alone (no training)"] = np.array([len(p) for p in outcomes.prompts], float)
    return out


LABELS = {
    "GSM8K CV": "GSM8K: 5-fold CV, trained on GSM8K",
    "MMLU CV": "MMLU: 5-fold CV, trained on MMLU",
    "joint -> GSM8K": "GSM8K: 5-fold CV of the shipped recipe (both sets)",
    "joint -> MMLU": "MMLU: 5-fold CV of the shipped recipe (both sets)",
    "MMLU -> GSM8K": "GSM8K: trained on MMLU only (cross-domain)",
    "GSM8K -> MMLU": "MMLU: trained on GSM8K only (cross-domain)",
}
SHORT = {k: k.replace("joint", "both") for k in LABELS}
VARIANTS = {
    "chosen: formats split, surface (chars, words) x0.3, 2^17 buckets a format, words 1-2,"
    " chars 2-5": None,
    "formats not split (2^18 buckets)": FeatureConfig(split_formats=False, bits=18),
    "no surface measures": FeatureConfig(surface=()),
    "neither (n-grams only, 2^18 buckets)": FeatureConfig(split_formats=False, surface=(), bits=18),
    "four surface measures (numbers, sentences too)": FeatureConfig(
        surface=("log_chars", "log_words", "log_numbers", "log_sentences")
    ),
    "2^16 buckets a format": FeatureConfig(bits=16),
    "words only (1-2)": FeatureConfig(char_ngrams=()),
    "characters only (2-5)": FeatureConfig(word_ngrams=(), number_shapes=False),
}
OPTIONS = {
    "C = 0.1": {"C": 0.1},
    "C = 1": {"C": 1.0},
    "min_df = 1": {"min_df": 1},
    "min_df = 3": {"min_df": 3},
}


def pair(per: list[dict]) -> str:
    """CPT(50%) / APGR, each the mean over the runs."""
    return f"{np.mean([p['cpt50'] for p in per]):.2f}% / {np.mean([p['apgr'] for p in per]):.3f}"


def cell(value: tuple | float, kind: str) -> str:
    fmt = "{:.3f}" if kind == "apgr" else "{:.2f}%"
    if isinstance(value, tuple):
        v, lo, hi = value
        return f"{fmt.format(v)} [{fmt.format(lo).rstrip('%')}, {fmt.format(hi).rstrip('%')}]"
    return fmt.format(value)


def mean_range(values: list[float], kind: str) -> str:
    fmt = "{:.3f}" if kind == "apgr" else "{:.2f}"
    return f"{fmt.format(np.mean(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def scoring_times(router, prompts) -> dict[str, float]:
    """Milliseconds to score one prompt, one call each: mean, median, p99, max."""
    router.score(prompts[0])
    times = []
    for p in prompts:
        started = time.perf_counter()
        router.score(p)
        times.append((time.perf_counter() - started) * 1000)
    t = np.array(times)
    return {"mean": t.mean(), "p50": np.median(t), "p99": np.percentile(t, 99), "max": t.max()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seeds", type=int, default=3, help="fold splits (seed 0 is headline)")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="1 seed, 200 resamples, no variants")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs" / "ROUTING.md")
    parser.add_argument("--router", type=Path, default=ROOT / "ims_kit" / "routing" / DEFAULT_FILE)
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.bootstrap = 1, 200
    seeds = list(range(args.seeds))
    started = time.perf_counter()
    sets = load(args.data)
    both, where = joined(sets)
    out: list[str] = []

    log("the chosen recipe in the six settings")
    chosen = settings(sets, both, where, T.TrainOptions(), seeds)
    rows, splits = [], []
    for setting, runs in chosen.items():
        part = sets[target_of(setting)]
        spread = with_spread(runs[0], part, args.bootstrap)
        rows.append([LABELS[setting], *(cell(spread[k], k) for k in FIGS)])
        if len(runs) > 1:
            per = [figures(r, part) for r in runs]
            splits.append([LABELS[setting], *(mean_range([p[k] for p in per], k) for k in FIGS)])
    for name, outcomes in sets.items():
        rand = [figures(metrics.random_scores(len(outcomes), s), outcomes) for s in range(20)]
        rows.append(
            [
                f"{name}: random router (mean of 20 seeds)",
                *(cell(float(np.mean([r[k] for r in rand])), k) for k in FIGS),
            ]
        )
        oracle = metrics.summary(
            metrics.oracle_curve(outcomes.strong_correct, outcomes.weak_correct)
        )
        rows.append([f"{name}: oracle", *(cell(oracle[k], k) for k in FIGS)])
        ref = ROUTELLM[name]
        rows.append(
            [
                f"{name}: RouteLLM's best published router",
                f"{ref['cpt50']:.2f}%",
                "",
                f"{ref['apgr']:.3f}",
                "",
            ]
        )
    header = ["evaluation", "CPT(50%)", "CPT(80%)", "APGR", "% strong for 95% quality"]
    out += ["### Figures", "", *table(header, rows), ""]
    if splits:
        out += [
            f"Over {len(seeds)} fold splits (seeds {seeds[0]}-{seeds[-1]}): mean (min-max).",
            "",
            *table(header, splits),
            "",
        ]

    if not args.quick:
        log("candidates")
        cand = {name: [candidate_oof(o, s) for s in seeds] for name, o in sets.items()}
        crow = []
        for method in cand["MMLU"][0]:
            cells = []
            for name, outcomes in sets.items():
                per = [figures(run[method], outcomes) for run in cand[name]]
                cells.append(pair(per))
            crow.append([method, *cells])
        out += [
            "### Methods measured",
            "",
            "5-fold CV per set, same folds and feature rows; CPT(50%) / APGR, mean over"
            f" {len(seeds)} fold splits.",
            "",
        ]
        out += [*table(["method", "GSM8K", "MMLU"], crow), ""]
        log("featurizer variants")
        vrow = []
        for label, config in VARIANTS.items():
            log(f"  {label}")
            runs = (
                chosen
                if config is None
                else settings(sets, both, where, T.TrainOptions(features=config), seeds)
            )
            vrow.append(
                [label, *(pair([figures(r, sets[target_of(k)]) for r in runs[k]]) for k in LABELS)]
            )
        out += [
            "### Featurizer variants",
            "",
            "Two logistic heads, C = 0.3, in the six settings; CPT(50%) / APGR, mean over"
            f" {len(seeds)} fold splits (cross-domain: one fit).",
            "",
        ]
        out += [*table(["features", *SHORT.values()], vrow), ""]
        log("training options")
        orow = [
            [
                "chosen: C = 0.3, min_df = 2",
                *(pair([figures(r, sets[n]) for r in chosen[f"{n} CV"]]) for n in sets),
            ]
        ]
        for label, change in OPTIONS.items():
            options = T.TrainOptions(**change)
            orow.append(
                [
                    label,
                    *(
                        pair([figures(chosen_oof(o, s, options), o) for s in seeds])
                        for o in sets.values()
                    ),
                ]
            )
        out += [
            "### Training options",
            "",
            f"5-fold CV per set; CPT(50%) / APGR, mean over {len(seeds)} fold splits.",
            "",
        ]
        out += [*table(["options", "GSM8K CV", "MMLU CV"], orow), ""]

    log("the shipped router")
    joint_figs = {name: figures(chosen[f"joint -> {name}"][0], sets[name]) for name in sets}
    rows_both = [
        {"prompt": p, "strong_correct": s, "weak_correct": w}
        for p, s, w in zip(both.prompts, both.strong_correct, both.weak_correct)
    ]
    router = train_router(
        rows_both,
        metadata={
            "trained_on": "RouteLLM dev sets: gsm8k_dev.jsonl (905) + mmlu_dev.jsonl (9,780)",
            "strong_model": "gpt-4-1106-preview",
            "weak_model": "mixtral-8x7b-instruct-v0.1",
            "attribution": ATTRIBUTION,
            "out_of_fold_per_set": joint_figs,
            "figures": "docs/ROUTING.md (tools/route_eval.py)",
        },
    )
    path = router.save(args.router)
    timing = scoring_times(router, list(both.prompts))
    fit_started = time.perf_counter()
    T.fit_scorer(T.featurize(both.prompts, T.TrainOptions().features), both, T.TrainOptions())
    fit_seconds = time.perf_counter() - fit_started
    out += [
        "### Cost",
        "",
        *table(
            ["", "value"],
            [
                [
                    f"train_router on both sets ({len(both):,} prompts; fit + 5-fold calibration)",
                    f"{router.metadata['train_seconds']:.1f} s",
                ],
                ["one fit of the two heads on both sets", f"{fit_seconds:.1f} s"],
                [
                    "scoring one prompt, mean / median / p99 / max",
                    " / ".join(f"{timing[k]:.2f}" for k in ("mean", "p50", "p99", "max")) + " ms",
                ],
                ["shipped router file", f"{path.stat().st_size / 1e6:.2f} MB"],
                [
                    "threshold for 95% of GPT-4's accuracy (calibration, both sets)",
                    f"{router.threshold_for(target_quality=0.95):.4f}"
                    f" ({router.calibration.share_for_quality(0.95) * 100:.1f}% strong calls)",
                ],
            ],
        ),
        "",
        f"Written by `python tools/route_eval.py{' --quick' if args.quick else ''}` on"
        f" {datetime.now(UTC):%Y-%m-%d %H:%M} UTC in {time.perf_counter() - started:.0f} s"
        f" ({platform.processor() or platform.machine()}, Python {platform.python_version()},"
        f" {len(seeds)} fold split(s), {args.bootstrap} bootstrap resamples).",
    ]
    write_docs(args.docs, "\n".join(out))
    print("\n".join(out))


def write_docs(path: Path, block: str) -> None:
    """Replace the text between the route_eval markers (append the block if there are none)."""
    text = path.read_text() if path.exists() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + BEGIN + "\n" + block + "\n" + END + rest.split(END, 1)[1]
    else:
        text += f"\n{BEGIN}\n{block}\n{END}\n"
    path.write_text(text)


if __name__ == "__main__":
    main()
