"""Reads a prompt the way a person triaging it would: how long, is it code, math, multi-step?

Pure and cheap (regular expressions over the text), used by the selector's ``auto`` strategy
and the workflow's ANALYZING step. The cues and thresholds are stated in the result so the
recommendation can say what it saw.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_CODE = re.compile(
    r"```|\bdef \w+\(|\bclass \w+[:(]|=>|#include|^\s*(?:import|from) \w+|"
    r"\b(?:write|implement|fix)\b[^.?!\n]{0,60}\b(?:function|class|method|script|program|query)\b|"
    r"\b(refactor|debug|stack trace|traceback|unit tests?|compile|regex|sql query)\b",
    re.IGNORECASE | re.MULTILINE,
)
# Doing mathematics, not naming it: "the CAP theorem" is a systems question.
_MATH = re.compile(
    r"\b(prove|proof|integral|integrate|derivative|differentiate|equations?|solve for|"
    r"probability that|eigen\w*|lemma)\b|[∑∫√]",
    re.IGNORECASE,
)
_STEPS = re.compile(
    r"\b(step by step|step-by-step|first\b.*\bthen\b|then\b.*\bfinally|trade-?offs?|"
    r"compare|analy[sz]e|design (?:a|an|the)|plan (?:a|an|the|how|for)|architecture|evaluate|"
    r"justify|explain why|"
    r"multi-step|reason about)\b|^\s*\d+[.)]\s",
    re.IGNORECASE | re.MULTILINE | re.DOTALL,
)

# Asking for a short answer makes a task easier whatever it names.
_BRIEF = re.compile(
    r"\b(in (?:one|two|three|a few|\d) (?:sentences?|words?|lines?|bullet points?)|briefly|"
    r"in short|one[- ]word|yes or no|tl;?dr)\b",
    re.IGNORECASE,
)

LONG_INPUT_TOKENS = 4_000
# Quality (0-100, the registry's score) a model needs for each difficulty under `auto`.
REQUIRED_QUALITY = {"easy": 0.0, "medium": 55.0, "hard": 75.0}


@dataclass(frozen=True)
class TaskProfile:
    """What the prompt looks like and the quality it calls for."""

    difficulty: str  # easy | medium | hard
    signals: tuple[str, ...]
    required_quality: float

    def describe(self) -> str:
        """One line for a recommendation's reasons."""
        seen = ", ".join(self.signals) if self.signals else "a short plain question"
        return f"{self.difficulty} task ({seen}): needs quality >= {self.required_quality:g}"


def analyze(prompt: str, prompt_tokens: int | None = None) -> TaskProfile:
    """Classify ``prompt`` as an easy, medium or hard task from its size and content cues."""
    tokens = prompt_tokens if prompt_tokens is not None else len(prompt) // 4
    signals: list[str] = []
    points = 0
    if tokens >= LONG_INPUT_TOKENS:
        signals.append(f"long input (~{tokens:,} tokens)")
        points += 1
    # Instructions sit at the start or the end; cue words inside a long pasted document
    # (a report that mentions a "plan") say nothing about the task, and this keeps it O(1).
    sample = prompt if len(prompt) <= 3_000 else f"{prompt[:2_000]}\n{prompt[-1_000:]}"
    if _CODE.search(sample):
        signals.append("code")
        points += 1
    if _MATH.search(sample):
        signals.append("math")
        points += 1
    steps = len(_STEPS.findall(sample))
    if steps:
        signals.append(f"multi-step reasoning cues x{steps}")
        points += 1 if steps == 1 else 2
    if points and _BRIEF.search(sample):
        signals.append("a short answer is asked for")
        points -= 1
    difficulty = "easy" if points == 0 else "medium" if points <= 1 else "hard"
    return TaskProfile(difficulty, tuple(signals), REQUIRED_QUALITY[difficulty])
