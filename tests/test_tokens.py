"""Token counting, the offline estimate and truncation (ims_kit.tokens)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ims_kit import tokens
from ims_kit.errors import InvalidInputError
from ims_kit.tokens import DEFAULT_MARKER, TokenCount, count, estimate, truncate

# Expected counts were computed with OpenAI's tiktoken 0.14 on the official vocabularies
# (sha256 as tiktoken pins them); "hello world" is [24912, 2375] in o200k_base and
# [15339, 1917] in cl100k_base, as tiktoken's own documentation shows.
EXACT_CASES = [
    ("", 0, 0),
    ("hello world", 2, 2),
    ("Hello, world!", 4, 4),
    ("The quick brown fox jumps over the lazy dog.", 10, 10),
    ("def add(a, b):\n    return a + b\n", 12, 12),
    ("日本語のテキストです。", 8, 10),
    ("🚀🎉 emoji!", 6, 8),
    ("<|endoftext|>", 7, 7),
    ("iPhone 15 Pro Max", 6, 5),
    ("    indented\n\n\n", 4, 4),
]

PROSE = (
    "The committee met on Tuesday to review the budget for the coming year. After a long "
    "discussion about travel costs, the members agreed that most meetings could be held "
    "online, and that the savings should go to the training programme instead. Several "
    "people asked whether the new schedule would leave enough time for questions from the "
    "public; the chair promised to publish the agenda a week in advance and to keep the "
    "last half hour of every session open. The minutes will be circulated by Friday, and "
    "any corrections should be sent to the secretary before the next meeting begins. "
) * 4

CODE = (
    '''
def merge_sorted(left: list[int], right: list[int]) -> list[int]:
    """Merge two sorted lists into one sorted list."""
    out, i, j = [], 0, 0
    while i < len(left) and j < len(right):
        if left[i] <= right[j]:
            out.append(left[i])
            i += 1
        else:
            out.append(right[j])
            j += 1
    out.extend(left[i:])
    out.extend(right[j:])
    return out
'''
    * 4
)

CJK = (
    "Python（派森）语言是一种功能强大而完善的通用型计算机程序设计语言，已经具有十多年的"
    "发展历史，成熟且稳定。Python の開発は、1990 年ごろから開始されています。"
    "파이썬은 배우기 쉽고, 강력한 프로그래밍 언어입니다. "
) * 4

MIXED = "Instruction: summarise the text below.\n" + PROSE + CODE + CJK + "\nQuestion: why?"


@pytest.mark.parametrize(("text", "o200k", "cl100k"), EXACT_CASES)
def test_exact_counts_match_tiktoken(text, o200k, cl100k):
    """gpt-4o counts with o200k_base and gpt-4-turbo with cl100k_base, token for token."""
    assert count(text, "gpt-4o") == TokenCount(o200k, True, "o200k_base")
    assert count(text, "gpt-4-turbo") == TokenCount(cl100k, True, "cl100k_base")


# Llama 3's tokenizer gives [15339, 1917] and [9906, 11, 1917, 0] (plus its BOS token).
@pytest.mark.parametrize(("text", "expected"), [("hello world", 2), ("Hello, world!", 4)])
def test_llama3_counts_are_exact(text, expected):
    """Llama 3.x ids count with the Llama 3 vocabulary and are marked exact."""
    assert count(text, "llama-3.1-8b") == TokenCount(expected, True, "llama3")


@pytest.mark.parametrize(
    ("model", "method", "exact"),
    [
        ("gpt-4o", "o200k_base", True),
        ("gpt-4o-mini", "o200k_base", True),
        ("gpt-4.1-nano", "o200k_base", True),
        ("o1-preview", "o200k_base", True),
        ("o1", "o200k_base", True),
        ("o3", "o200k_base", True),
        ("o4-mini", "o200k_base", True),
        ("gpt-5", "o200k_base", True),
        ("gpt-5-mini", "o200k_base", True),
        ("chatgpt-4o-latest", "o200k_base", True),
        ("gpt-oss-120b", "o200k_base", True),
        ("openai/gpt-4o", "o200k_base", True),
        ("openai:gpt-4.1", "o200k_base", True),
        ("ft:gpt-4o-mini-2024-07-18:acme::abc123", "o200k_base", True),
        ("GPT-4o", "o200k_base", True),
        ("gpt-4-turbo", "cl100k_base", True),
        ("gpt-4", "cl100k_base", True),
        ("gpt-4-0613", "cl100k_base", True),
        ("gpt-3.5-turbo", "cl100k_base", True),
        ("gpt-35-turbo", "cl100k_base", True),
        ("text-embedding-3-small", "cl100k_base", True),
        ("llama-3.1-8b", "llama3", True),
        ("llama-3.1-405b", "llama3", True),
        ("meta-llama/Llama-3.3-70B-Instruct", "llama3", True),
        ("llama3-70b-8192", "llama3", True),
        ("llama3.1:8b", "llama3", True),
        ("claude-sonnet-4-5", "estimate(o200k_base)", False),
        ("claude-3-5-haiku", "estimate(o200k_base)", False),
        ("gemini-2.5-pro", "estimate(o200k_base)", False),
        ("llama-4-scout", "estimate(o200k_base)", False),
        ("llama-2-70b", "estimate(o200k_base)", False),
        ("mistral-large", "estimate(o200k_base)", False),
        ("", "estimate(o200k_base)", False),
        (None, "estimate(o200k_base)", False),
    ],
)
def test_exact_flag_per_model_family(model, method, exact):
    """Each model id maps to its family's tokenizer, or is an o200k estimate if unknown."""
    result = count("Hello, world!", model)
    assert (result.method, result.exact) == (method, exact)
    assert result.tokens == 4


@pytest.mark.parametrize(
    ("text", "tolerance"),
    [(PROSE, 0.15), (CODE, 0.25), (CJK, 0.25)],
    ids=["prose", "code", "cjk"],
)
def test_estimate_is_close_to_o200k(text, tolerance):
    """estimate() stays within 15% of the o200k count on prose and 25% on code and CJK."""
    exact = count(text, "gpt-4o").tokens
    assert abs(estimate(text) - exact) <= tolerance * exact


@pytest.mark.parametrize(
    ("text", "expected"), [("", 0), ("abcde", 1), ("abcdef", 2), ("12", 1), ("日", 1)]
)
def test_estimate_follows_its_documented_rule(text, expected):
    """estimate() is letters/5 + digits-and-punctuation/2 + other UTF-8 bytes/4, rounded up."""
    assert estimate(text) == expected


def test_token_count_is_frozen():
    """A TokenCount cannot be changed after it is made."""
    with pytest.raises(AttributeError):
        count("hi").tokens = 3  # type: ignore[misc]


def _marker_tokens(model):
    return count(DEFAULT_MARKER, model).tokens


BUDGETS = [0, 1, 3, 9, 10, 11, 12, 20, 50, 200, 1000]
MODELS = ["gpt-4o", "gpt-4-turbo", "claude-sonnet-4", None, "llama-3.1-8b"]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("budget", BUDGETS)
def test_truncate_fits_and_keeps_head_and_tail(budget, model):
    """truncate() fits the budget and keeps the start, then the marker, then the end."""
    out = truncate(MIXED, budget, model)
    assert count(out, model).tokens <= budget
    if budget <= _marker_tokens(model):
        assert MIXED.startswith(out)
        return
    head, sep, tail = out.partition(DEFAULT_MARKER)
    assert sep == DEFAULT_MARKER
    assert MIXED.startswith(head)
    assert MIXED.endswith(tail)
    if budget >= _marker_tokens(model) + 3:
        assert head and tail
    if budget >= _marker_tokens(model) + 20:
        assert head.startswith("Instruction:")
        assert tail.endswith("Question: why?")
        assert len(head) > len(tail)


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4-turbo"])
@pytest.mark.parametrize("slack", [0, 1, 1000])
def test_text_that_fits_comes_back_unchanged(model, slack):
    """A text within the budget (exactly at it, or under) is returned as it is."""
    budget = count(MIXED, model).tokens + slack
    assert truncate(MIXED, budget, model) is MIXED


def test_truncate_with_empty_marker():
    """An empty marker just joins the kept head and tail."""
    out = truncate(PROSE, 30, "gpt-4o", marker="")
    assert count(out, "gpt-4o").tokens <= 30
    assert out.startswith("The committee") and out.endswith("begins. ")


UNICODE = "前言：请阅读。👨‍👩‍👧‍👦🚀 naïve café — 日本語のテキスト 🇫🇷🎉 한국어 텍스트 " * 20


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4-turbo", None])
@pytest.mark.parametrize("budget", [1, 2, 5, 13, 14, 15, 17, 23, 31, 64, 101])
def test_unicode_survives_truncation(budget, model):
    """CJK, accents and emoji are never cut inside a character and never turn into U+FFFD."""
    out = truncate(UNICODE, budget, model)
    assert count(out, model).tokens <= budget
    assert "\ufffd" not in out
    out.encode("utf-8")  # no lone surrogates
    head, _, tail = out.partition(DEFAULT_MARKER)
    assert UNICODE.startswith(head)
    assert UNICODE.endswith(tail)


@pytest.mark.parametrize("budget", [-1, -100])
def test_negative_budget_raises(budget):
    """A negative max_tokens is refused with InvalidInputError, which is a ValueError."""
    with pytest.raises(ValueError, match="max_tokens"):
        truncate("hello", budget)
    with pytest.raises(InvalidInputError):
        truncate("hello", budget, "gpt-4o")


def test_lone_surrogates_do_not_crash():
    """Text with a lone surrogate (undecodable bytes kept by Python) is still counted and cut."""
    text = "bad byte \udcff here " * 50
    assert count(text, "gpt-4o").tokens > 0
    out = truncate(text, 20, "gpt-4o")
    assert count(out, "gpt-4o").tokens <= 20


@pytest.fixture
def no_tokenizer(monkeypatch):
    """The tokenizer package is missing: importing quicktok raises ImportError."""
    monkeypatch.setitem(sys.modules, "quicktok", None)
    tokens._encoding.cache_clear()
    yield
    tokens._encoding.cache_clear()


@pytest.mark.parametrize("model", ["gpt-4o", "claude-sonnet-4", None])
def test_count_falls_back_to_estimate_without_tokenizer(no_tokenizer, model):
    """Without the tokenizer package, count() returns the heuristic estimate, marked inexact."""
    assert count(PROSE, model) == TokenCount(estimate(PROSE), False, "estimate(chars/4)")


@pytest.mark.parametrize("budget", [0, 1, 5, 9, 10, 30, 300])
def test_truncate_falls_back_to_estimate_without_tokenizer(no_tokenizer, budget):
    """Without the tokenizer package, truncate() still fits the estimated budget, head and tail."""
    out = truncate(MIXED, budget, "gpt-4o")
    assert estimate(out) <= budget
    head, _, tail = out.partition(DEFAULT_MARKER)
    assert MIXED.startswith(head)
    assert MIXED.endswith(tail)
    if budget >= 30:
        assert head.startswith("Instruction:") and tail.endswith("why?")


@pytest.mark.parametrize(
    "text",
    [(MIXED * 2000)[:4_000_000], "汉字" * 700_000, "x" * 4_000_000],
    ids=["mixed", "cjk", "one-letter"],
)
def test_huge_text_is_counted_and_truncated(text):
    """A 4 MB text is counted exactly and truncated to fit (its timing is in `make bench`)."""
    result = count(text, "gpt-4o")
    assert result.exact and result.tokens > 100_000
    out = truncate(text, 1000, "gpt-4o")
    assert count(out, "gpt-4o").tokens <= 1000


def test_import_loads_no_tokenizer():
    """Importing ims_kit or ims_kit.tokens does not import the tokenizer package."""
    root = str(Path(tokens.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    code = (
        "import sys, ims_kit; assert 'ims_kit.tokens' not in sys.modules; "
        "import ims_kit.tokens; assert 'quicktok' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
