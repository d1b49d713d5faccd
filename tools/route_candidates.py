"""The routing methods measured against the chosen one (docs/ROUTING.md, "Methods measured").

Each candidate takes the TF-IDF rows of a fold's training and held-out prompts (the shipped
featurizer, IDF from the training part only) or the prompts themselves, and returns a score
per held-out prompt, higher = send to the strong model. scikit-learn does the learning.
"""

from __future__ import annotations

import re

import numpy as np

NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def _proba(X, y, Xt, C):
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=C, solver="liblinear", max_iter=1000).fit(X, y)
    return model.predict_proba(Xt)[:, 1]


def weak_wrong(X, strong, weak, Xt, prompts, C=0.3):
    """One logistic regression: P(weak model wrong)."""
    return _proba(X, ~weak, Xt, C)


def strong_wins(X, strong, weak, Xt, prompts, C=0.3):
    """One logistic regression: P(strong right and weak wrong)."""
    return _proba(X, strong & ~weak, Xt, C)


def ridge_gain(X, strong, weak, Xt, prompts, alpha=10.0):
    """Ridge regression of the gain strong_correct - weak_correct."""
    from sklearn.linear_model import Ridge

    return Ridge(alpha=alpha).fit(X, strong.astype(float) - weak).predict(Xt)


def knn_gain(X, strong, weak, Xt, prompts, k=100):
    """Similarity-weighted mean gain of the k most similar training prompts (cosine)."""
    gain = strong.astype(float) - weak
    scores = np.empty(Xt.shape[0])
    for start in range(0, Xt.shape[0], 500):  # bounded memory: 500 x n similarities at a time
        sim = (Xt[start : start + 500] @ X.T).toarray()
        top = np.argpartition(-sim, k, axis=1)[:, :k]
        weight = np.take_along_axis(sim, top, 1).clip(min=0)
        scores[start : start + 500] = (weight * gain[top]).sum(1) / (weight.sum(1) + 1e-9)
    return scores


def hand_features(prompt: str) -> list[float]:
    """Length, numbers and a few wording cues: what a difficulty heuristic would read."""
    numbers = NUMBER.findall(prompt)
    values = [float(n.replace(",", "")) for n in numbers if n.replace(",", "").count(".") < 2]
    words = re.findall(r"\w+", prompt)
    low = prompt.lower()
    return [
        np.log1p(len(prompt)),
        np.log1p(len(words)),
        len(numbers),
        len(set(numbers)),
        np.log1p(max(values, default=0.0)),
        sum("." in n for n in numbers),
        prompt.count("%"),
        prompt.count("/"),
        prompt.count("$"),
        len(re.findall(r"[.!?](?:\s|$)", prompt)),
        prompt.count("?"),
        prompt.count("\n"),
        float("how many" in low or "how much" in low),
        sum(w in low for w in ("half", "twice", "double", "third", "quarter", "percent")),
        float(np.mean([len(w) for w in words])) if words else 0.0,
    ]


def boosted_hand_features(X, strong, weak, Xt, prompts, train_prompts=None):
    """Gradient boosting on hand-made features: P(strong right) - P(weak right)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    H = np.array([hand_features(p) for p in train_prompts])
    Ht = np.array([hand_features(p) for p in prompts])
    out = np.zeros(len(prompts))
    for labels, sign in ((strong, 1), (weak, -1)):
        model = HistGradientBoostingClassifier(
            max_iter=100, learning_rate=0.05, max_depth=3, random_state=0
        )
        out += sign * model.fit(H, labels).predict_proba(Ht)[:, 1]
    return out


def two_heads(X, strong, weak, Xt, prompts, C=0.3):
    """The chosen form, refitted here: P(strong right) - P(weak right)."""
    return _proba(X, strong, Xt, C) - _proba(X, weak, Xt, C)


def rank_mean(*columns: np.ndarray) -> np.ndarray:
    """Average of the columns' ranks: an ensemble that ignores their scales."""
    from scipy.stats import rankdata

    return np.mean([rankdata(c) / len(c) for c in columns], axis=0)


CANDIDATES = {
    "logistic: P(weak wrong)": weak_wrong,
    "logistic: P(strong right and weak wrong)": strong_wins,
    "ridge: strong_correct - weak_correct": ridge_gain,
    "similarity-weighted kNN (k=100) over the TF-IDF": knn_gain,
    "gradient boosting on 15 hand-made features": boosted_hand_features,
}
