"""What one call sends: the conversation, its system prompt, generation options, the answer's
JSON Schema. Built from ``ask``'s arguments and checked before anything is sent; recovery
shortens it and every provider translates it into its wire format."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from ims_kit.errors import InvalidInputError
from ims_kit.records import MAX_TOKENS, ModelSpec

ROLES = ("system", "user", "assistant")
MAX_STOP_SEQUENCES = 16


@dataclass(frozen=True)
class Message:
    """One turn of a conversation: ``role`` is user or assistant (system turns become
    ``Prompt.system``)."""

    role: str
    content: str


@dataclass(frozen=True)
class Options:
    """Generation options, checked when built; None means the model's own default."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def given(self) -> dict[str, Any]:
        """The options that were set, by name (what a request says it asked for)."""
        values = {name: getattr(self, name) for name in _OPTION_NAMES}
        return {name: v for name, v in values.items() if v is not None and v != ()}


_OPTION_NAMES = tuple(f.name for f in fields(Options))  # fields() is slow on the hot path
_DEFAULTS = Options()


@dataclass(frozen=True)
class Prompt:
    """What one call sends: the conversation, its system prompt, the generation options and
    the JSON Schema of the answer, if any. Recovery shortens it, providers translate it."""

    messages: tuple[Message, ...]
    system: str | None = None
    options: Options = Options()
    json_schema: Mapping[str, Any] | None = None

    @property
    def text(self) -> str:
        """Everything the model reads (system prompt and every turn), for counting tokens."""
        parts = [self.system] if self.system else []
        return "\n".join([*parts, *(m.content for m in self.messages)])

    @property
    def last_user(self) -> str:
        """The latest user turn: what a one-shot reply (the simulator, a cache) answers."""
        return next((m.content for m in reversed(self.messages) if m.role == "user"), "")

    def with_messages(self, messages: Iterable[Message]) -> Prompt:
        """The same prompt with other turns (a truncated conversation)."""
        return dataclasses.replace(self, messages=tuple(messages))

    def with_max_tokens(self, max_tokens: int) -> Prompt:
        """The same prompt asking for at most ``max_tokens`` of answer."""
        return dataclasses.replace(
            self, options=dataclasses.replace(self.options, max_tokens=max_tokens)
        )


def build_prompt(
    prompt: Any = None,
    *,
    messages: Any = None,
    system: Any = None,
    json_schema: Any = None,
    caller: str = "ask",
    **options: Any,
) -> Prompt:
    """A checked ``Prompt`` from ``ask``'s arguments; InvalidInputError names the parameter.

    Give ``prompt`` (a string) or ``messages`` (the OpenAI-style list of ``{"role", "content"}``
    every tool speaks), not both. A leading ``system`` message is the system prompt, as is
    ``system=``; the conversation must end with a user turn.
    """
    if prompt is not None and messages is not None:
        raise InvalidInputError(f"{caller}(): give prompt or messages, not both")
    if messages is None:
        if prompt is None:
            raise InvalidInputError(f"{caller}(): give a prompt (a string) or messages=[...]")
        if not isinstance(prompt, str):
            raise InvalidInputError(
                f"{caller}(): prompt must be a string, got {type(prompt).__name__}"
                " (a conversation goes in messages=[...])"
            )
        if not prompt.strip():
            raise InvalidInputError("the prompt is empty: there is nothing to ask")
        turns = (Message("user", prompt),)
    else:
        turns, system = _conversation(messages, system, caller)
    if system is not None and (not isinstance(system, str) or not system.strip()):
        raise InvalidInputError(f"{caller}(): system must be a non-empty string, got {system!r}")
    if json_schema is not None and not isinstance(json_schema, Mapping):
        raise InvalidInputError(
            f"{caller}(): json_schema must be a JSON Schema dict, got {type(json_schema).__name__}"
        )
    return Prompt(turns, system, check_options(caller, **options), json_schema)


def _conversation(messages: Any, system: Any, caller: str) -> tuple[tuple[Message, ...], Any]:
    if isinstance(messages, str | bytes | Mapping) or not isinstance(messages, Iterable):
        raise InvalidInputError(
            f'{caller}(): messages must be a list of {{"role": ..., "content": ...}} dicts'
        )
    turns, systems = [], []
    for i, m in enumerate(messages):
        role, content = _turn(m, i, caller)
        if role == "system":
            if turns:
                raise InvalidInputError(
                    f"{caller}(): messages[{i}]: a system message must come before the"
                    " conversation (or use system=)"
                )
            systems.append(content)
        else:
            turns.append(Message(role, content))
    if not turns:
        raise InvalidInputError(f"{caller}(): messages has no user turn: there is nothing to ask")
    if turns[-1].role != "user":
        raise InvalidInputError(
            f"{caller}(): the conversation must end with a user turn (the last one is"
            f" {turns[-1].role!r}): the model answers the latest user message"
        )
    if systems and system is not None:
        raise InvalidInputError(
            f"{caller}(): give the system prompt once: system= or a 'system' message"
        )
    return tuple(turns), system if not systems else "\n\n".join(systems)


def _turn(m: Any, i: int, caller: str) -> tuple[str, str]:
    if isinstance(m, Message):
        role, content = m.role, m.content
    elif isinstance(m, Mapping):
        unknown = sorted(set(m) - {"role", "content", "name"})
        if unknown or "role" not in m or "content" not in m:
            raise InvalidInputError(
                f"{caller}(): messages[{i}] must have exactly 'role' and 'content'"
                + (f" (unexpected: {', '.join(map(repr, unknown))})" if unknown else "")
            )
        role, content = m["role"], m["content"]
    else:
        raise InvalidInputError(
            f"{caller}(): messages[{i}] must be a dict with 'role' and 'content',"
            f" got {type(m).__name__}"
        )
    if role not in ROLES:
        raise InvalidInputError(
            f"{caller}(): messages[{i}] has unknown role {role!r}; known: {', '.join(ROLES)}"
        )
    if not isinstance(content, str):
        raise InvalidInputError(
            f"{caller}(): messages[{i}]['content'] must be a string, got {type(content).__name__}"
        )
    if role != "assistant" and not content.strip():
        raise InvalidInputError(f"{caller}(): messages[{i}] ({role}) is empty")
    return role, content


def check_options(
    caller: str = "ask",
    *,
    max_tokens: Any = None,
    temperature: Any = None,
    top_p: Any = None,
    stop: Any = None,
    seed: Any = None,
) -> Options:
    """Generation options checked locally, so a bad value never reaches a provider."""
    if all(v is None for v in (max_tokens, temperature, top_p, stop, seed)):
        return _DEFAULTS  # the common call sets none: nothing to check

    def number(name: str, value: Any, low: float, high: float) -> float | None:
        if value is None:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise InvalidInputError(f"{caller}(): {name} must be a number, got {value!r}")
        if not low <= value <= high:
            raise InvalidInputError(
                f"{caller}(): {name} must be from {low:g} to {high:g}, got {value!r}"
            )
        return float(value)

    if max_tokens is not None and (
        isinstance(max_tokens, bool)
        or not isinstance(max_tokens, int)
        or not 0 < max_tokens <= MAX_TOKENS
    ):
        raise InvalidInputError(
            f"{caller}(): max_tokens must be a whole number of tokens above 0, got {max_tokens!r}"
        )
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise InvalidInputError(f"{caller}(): seed must be a whole number, got {seed!r}")
    stops: tuple[str, ...] = ()
    if stop is not None:
        stops = (
            (stop,)
            if isinstance(stop, str)
            else tuple(stop)
            if isinstance(stop, Iterable)
            else (stop,)
        )
        if not stops or not all(isinstance(s, str) and s for s in stops):
            raise InvalidInputError(
                f"{caller}(): stop must be a non-empty string or a list of them, got {stop!r}"
            )
        if len(stops) > MAX_STOP_SEQUENCES:
            raise InvalidInputError(
                f"{caller}(): at most {MAX_STOP_SEQUENCES} stop sequences, got {len(stops)}"
            )
    return Options(
        max_tokens=max_tokens,
        temperature=number("temperature", temperature, 0.0, 2.0),
        top_p=number("top_p", top_p, 0.0, 1.0),
        stop=stops,
        seed=seed,
    )


def refused_by_registry(spec: ModelSpec) -> dict[str, str]:
    """The options the model's row marks as not taken, and why each is dropped."""
    return {
        name: f"{spec.model_id} does not take {name} (its registry row says so)"
        for name in spec.unsupported_options
    }


def without_options(prompt: Prompt, refused: Mapping[str, str]) -> tuple[Prompt, dict[str, str]]:
    """The prompt less the options it set that the model refuses, and why each was dropped:
    sent, they would fail the call remotely."""
    if not refused:
        return prompt, {}
    given = prompt.options.given()
    dropped = {name: why for name, why in refused.items() if name in given}
    if not dropped:
        return prompt, {}
    cleared = {name: () if name == "stop" else None for name in dropped}
    options = dataclasses.replace(prompt.options, **cleared)
    return dataclasses.replace(prompt, options=options), dropped


def as_prompt(
    prompt: Prompt | str, *, max_tokens: int | None = None, system: str | None = None
) -> Prompt:
    """A Prompt as it is, or one user turn (with ``max_tokens`` and ``system``) from a string:
    what a provider's ``complete(spec, "text")`` means."""
    if isinstance(prompt, Prompt):
        return prompt
    return Prompt((Message("user", prompt),), system, Options(max_tokens=max_tokens))
