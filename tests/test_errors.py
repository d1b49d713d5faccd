"""The one error hierarchy: messages that say what was wrong and what to do."""

from __future__ import annotations

import sqlite3

from ims_kit.errors import (
    AllModelsFailed,
    ImsError,
    MissingKeyError,
    UnknownModelError,
    database_errors,
)
from ims_kit.records import Attempt


def test_missing_keys_of_several_candidates_are_one_error_naming_them_all():
    """of_all() keeps the first provider and names every variable once, in order."""
    one = MissingKeyError("anthropic", "ANTHROPIC_API_KEY")
    assert "set the environment variable ANTHROPIC_API_KEY" in str(one)
    both = MissingKeyError.of_all(
        [
            one,
            MissingKeyError("gemini", "GEMINI_API_KEY"),
            MissingKeyError("anthropic", "ANTHROPIC_API_KEY"),
        ]
    )
    assert both.missing == (("anthropic", "ANTHROPIC_API_KEY"), ("gemini", "GEMINI_API_KEY"))
    assert "set one of ANTHROPIC_API_KEY (anthropic), GEMINI_API_KEY (gemini)" in str(both)
    assert "--provider simulated" in str(both)


def test_all_models_failed_says_each_model_once():
    """Consecutive attempts on one model with one kind are said once, with their count."""
    attempts = [Attempt("a", "OVERLOAD", 503, "r1")] * 3 + [Attempt("b", "TIMEOUT")]
    err = AllModelsFailed(attempts, request_id="q1")
    assert str(err) == "every candidate model failed: a: OVERLOAD x3 (HTTP 503) [r1]; b: TIMEOUT"
    assert err.request_id == "q1" and isinstance(err, ImsError)


def test_unknown_model_is_a_key_error_without_quotes():
    """UnknownModelError is a KeyError whose text is the message itself."""
    err = UnknownModelError("nope", known=3)
    assert isinstance(err, KeyError) and str(err).startswith("unknown model id 'nope'")


def test_database_errors_are_sqlites():
    """What the stores raise on a failing file, for callers that never import sqlite3."""
    assert database_errors() == (sqlite3.Error,)
