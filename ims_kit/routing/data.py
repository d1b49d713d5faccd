"""Labelled routing rows (prompt, strong_correct, weak_correct): read, check, refuse clearly."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ims_kit.errors import InvalidInputError

FIELDS = ("prompt", "strong_correct", "weak_correct")


@dataclass(frozen=True)
class Outcomes:
    """Prompts with whether the strong and the weak model answered each one correctly."""

    prompts: tuple[str, ...]
    strong_correct: tuple[bool, ...]
    weak_correct: tuple[bool, ...]

    def __len__(self) -> int:
        return len(self.prompts)

    def subset(self, index: Iterable[int]) -> Outcomes:
        """The rows at these positions, in this order."""
        index = list(index)
        return Outcomes(
            tuple(self.prompts[i] for i in index),
            tuple(self.strong_correct[i] for i in index),
            tuple(self.weak_correct[i] for i in index),
        )


def _is_bool(value: Any) -> bool:
    # numpy's bool_ arrives from DataFrames; ints and strings are refused (1/"true" are guesses)
    return isinstance(value, bool) or type(value).__name__ == "bool_"


def _records(rows: Any) -> list[Mapping]:
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # a pandas DataFrame
        missing = [f for f in FIELDS if f not in rows.columns]
        if missing:
            raise InvalidInputError(f"the routing data has no column {', '.join(missing)}")
        return rows[list(FIELDS)].to_dict("records")
    if isinstance(rows, str | bytes | Path) or not isinstance(rows, Iterable):
        raise InvalidInputError(
            "routing rows must be dicts (or a DataFrame) with prompt, strong_correct and"
            " weak_correct; read a JSONL file with ims_kit.routing.read_jsonl(path)"
        )
    return list(rows)


def check_rows(rows: Any, *, need_both_outcomes: bool = False) -> Outcomes:
    """Validated rows; ``need_both_outcomes``: refuse data from which no router can be learned."""
    records = _records(rows)
    if not records:
        raise InvalidInputError("no routing rows: give at least one labelled prompt")
    prompts, strong, weak = [], [], []
    for i, row in enumerate(records, start=1):
        if not isinstance(row, Mapping):
            raise InvalidInputError(f"routing row {i} is a {type(row).__name__}, not a dict")
        missing = [f for f in FIELDS if f not in row]
        if missing:
            raise InvalidInputError(f"routing row {i} has no field {', '.join(missing)}")
        if not isinstance(row["prompt"], str):
            kind = type(row["prompt"]).__name__
            raise InvalidInputError(f"routing row {i}: prompt must be a string, not {kind}")
        for name in ("strong_correct", "weak_correct"):
            if not _is_bool(row[name]):
                raise InvalidInputError(
                    f"routing row {i}: {name} must be true or false, not {row[name]!r}"
                )
        prompts.append(row["prompt"])
        strong.append(bool(row["strong_correct"]))
        weak.append(bool(row["weak_correct"]))
    outcomes = Outcomes(tuple(prompts), tuple(strong), tuple(weak))
    if need_both_outcomes:
        _check_learnable(outcomes)
    return outcomes


def _check_learnable(outcomes: Outcomes) -> None:
    """Some prompts must gain from the strong model, and not every prompt the same way."""
    gains = {int(s) - int(w) for s, w in zip(outcomes.strong_correct, outcomes.weak_correct)}
    n = len(outcomes)
    if all(outcomes.weak_correct):
        raise InvalidInputError(
            f"one class only: the weak model is right on all {n} prompts, so the strong model"
            " can never do better and there is nothing to learn"
        )
    if 1 not in gains:
        raise InvalidInputError(
            "the strong model is never right where the weak one is wrong: sending a prompt to"
            " it never helps, so there is nothing to learn"
        )
    strong_rate = sum(outcomes.strong_correct) / n
    weak_rate = sum(outcomes.weak_correct) / n
    if strong_rate <= weak_rate:
        raise InvalidInputError(
            f"the strong model is right on {strong_rate:.0%} of these prompts and the weak one"
            f" on {weak_rate:.0%}: the strong model is not the better one here (swapped?)"
        )
    if gains == {1}:
        raise InvalidInputError(
            f"one class only: on all {n} prompts the strong model is right and the weak one"
            " wrong, so every prompt needs the strong model and there is nothing to learn"
        )


def read_jsonl(path: str | Path) -> list[dict]:
    """The rows of a JSON Lines file (one object a line; blank lines are skipped)."""
    if not isinstance(path, str | Path):
        raise InvalidInputError(f"read_jsonl takes a file path, not {path!r}")
    rows = []
    try:
        with Path(path).open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InvalidInputError(
                        f"{path}: line {number} is not JSON ({exc.msg})"
                    ) from None
                if not isinstance(row, dict):
                    raise InvalidInputError(f"{path}: line {number} is not a JSON object")
                rows.append(row)
    except UnicodeDecodeError:
        raise InvalidInputError(f"{path} is not UTF-8 text") from None
    except IsADirectoryError:
        raise InvalidInputError(f"{path} is a folder, not a JSONL file") from None
    except FileNotFoundError:
        raise InvalidInputError(f"no file at {path}") from None
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path}: {exc.strerror or exc}") from None
    return rows
