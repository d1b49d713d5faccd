"""An offline provider, deterministic for a seed, with faults on request.

It stands in for the vendors in the demo, the notebooks and the tests: latency and output
length are drawn per model from lognormal distributions (small models fast, large ones slow),
token counts come from the prompt, and ``inject`` / ``fail_always`` raise ``ProviderError``
instances shaped like the real vendors' so that every recovery path runs without a network.
It needs no key and never imports an HTTP client.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
import re
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from typing import Any

from ims_kit.errors import ErrorKind, InvalidInputError, ProviderError
from ims_kit.prompts import Prompt, as_prompt, refused_by_registry
from ims_kit.records import Completion, ModelSpec

ANY_MODEL = "*"
FAST_MS, MEDIUM_MS, SLOW_MS = 400.0, 1000.0, 2500.0  # median latency by model size
LATENCY_SIGMA = 0.35  # lognormal spread: p95 ≈ 1.8 × median
OUTPUT_MEDIAN_TOKENS, OUTPUT_SIGMA = 180.0, 0.7
FAULT_LATENCY_SHARE = 0.1  # an error answer comes back faster than a completion
TTFT_SHARE = 0.3  # a stream's first piece arrives after this share of the whole answer's time
WORDS_PER_PIECE = 3
_FAST = {"mini", "flash", "haiku", "nano", "lite", "8b"}
_SLOW = {"pro", "opus", "o1", "o3", "405b"}
_WORD_SPLIT = re.compile(r"[-_.:/\s]+")
_ARITHMETIC = re.compile(r"^what(?: is|'s) (-?\d{1,9}) ?([+\-*x×]) ?(-?\d{1,9})$")
_CANNED = {
    "what is the capital of france": "Paris.",
    "hello": "Hello! How can I help you today?",
    "hi": "Hello! How can I help you today?",
    "say hello": "Hello!",
    "ping": "pong",
}
_SENTENCES = (
    "The short answer depends on the constraints in your question.",
    "Here is a summary of the main points.",
    "First, consider the inputs and what they imply.",
    "Second, weigh the trade-offs between cost, speed and quality.",
    "In most cases the simplest approach is also the most robust.",
    "A small example makes the idea concrete.",
    "Edge cases deserve a separate check.",
    "The result should be verified against a known reference.",
    "This is consistent with common practice.",
    "Let me know if you would like more detail on any step.",
)


def latency_median_ms(spec: ModelSpec) -> float:
    """Median simulated latency from size cues in the model's names (mini/flash fast, pro slow)."""
    names = f"{spec.model_id} {spec.api_model}".lower()
    words = set(_WORD_SPLIT.split(names))
    if words & _FAST:
        return FAST_MS
    if words & _SLOW or "gpt-5" in names:
        return SLOW_MS
    return MEDIUM_MS


def estimate_tokens(text: str) -> int:
    """The prompt's token count as ``ims_kit.tokens`` counts it (exact for OpenAI models), so
    simulated usage agrees with what the selector estimated."""
    from ims_kit import tokens

    return max(1, tokens.count(text).tokens) if text else 0


def parse_kind(kind: ErrorKind | str) -> ErrorKind:
    """An ``ErrorKind`` from itself or its name in any case (``"rate_limit"``)."""
    try:
        return ErrorKind(kind.upper() if isinstance(kind, str) else kind)
    except ValueError:
        known = ", ".join(k.value for k in ErrorKind)
        raise InvalidInputError(f"unknown fault kind {kind!r}; known: {known}") from None


class SimulatedProvider:
    """Offline, seeded provider; ``realtime=True`` sleeps the drawn latency, else only reports it.

    ``clock``, if given, is a fake clock with an ``advance(seconds)`` method: every call advances it
    by its simulated duration, so breakers and Retry-After waits see time pass without sleeping.
    A simulated timeout takes ``timeout_s``.
    """

    name = "simulated"

    def __init__(
        self,
        seed: int = 0,
        clock: Any = None,
        *,
        realtime: bool = False,
        timeout_s: float = 120.0,
    ):
        self.seed = seed
        self.clock = clock
        self.realtime = realtime
        self.timeout_s = timeout_s
        self.calls = 0
        self._lock = threading.Lock()
        self._rngs: dict[str, random.Random] = {}
        self._queued: dict[str, deque[_Fault]] = {}
        self._always: dict[str, _Fault] = {}

    def __repr__(self) -> str:
        return f"SimulatedProvider(seed={self.seed}, realtime={self.realtime})"

    # ------------------------------------------------------------------ faults
    def inject(
        self,
        model_id: str,
        kind: ErrorKind | str,
        *,
        count: int = 1,
        retry_after_s: float | None = None,
        after_pieces: int | None = None,
    ) -> None:
        """Fail the next ``count`` calls to ``model_id`` (``"*"``: any model) with ``kind``.

        ``after_pieces``: a stream fails after yielding that many pieces (a connection lost
        mid-answer); a plain call fails at once."""
        if count < 1:
            raise InvalidInputError(f"count must be at least 1, got {count!r}")
        if after_pieces is not None and (
            isinstance(after_pieces, bool) or not isinstance(after_pieces, int) or after_pieces < 1
        ):
            raise InvalidInputError(f"after_pieces must be at least 1, got {after_pieces!r}")
        fault = _Fault(parse_kind(kind), retry_after_s, after_pieces)
        with self._lock:
            self._queued.setdefault(model_id, deque()).extend([fault] * count)

    def fail_always(
        self, model_id: str, kind: ErrorKind | str | None, *, retry_after_s: float | None = None
    ) -> None:
        """Fail every call to ``model_id`` (``"*"``: any) with ``kind`` until ``kind=None``."""
        with self._lock:
            if kind is None:
                self._always.pop(model_id, None)
            else:
                self._always[model_id] = _Fault(parse_kind(kind), retry_after_s)

    def clear(self) -> None:
        """Forget every injected and permanent fault."""
        with self._lock:
            self._queued.clear()
            self._always.clear()

    def _next_fault(self, model_id: str) -> _Fault | None:
        for key in (model_id, ANY_MODEL):
            if key in self._always:
                return self._always[key]
        for key in (model_id, ANY_MODEL):
            if self._queued.get(key):
                return self._queued[key].popleft()
        return None

    # ------------------------------------------------------------------ calls
    def complete(self, spec: ModelSpec, prompt: Prompt | str, **options: Any) -> Completion:
        """One simulated call: a ``Completion`` or a vendor-shaped ``ProviderError``."""
        outcome, seconds, _ = self._draw(spec, as_prompt(prompt, **options))
        if self.realtime:
            time.sleep(seconds)
        return _deliver(outcome, seconds)

    async def acomplete(self, spec: ModelSpec, prompt: Prompt | str, **options: Any) -> Completion:
        """``complete`` for async code (``asyncio.sleep`` when ``realtime``)."""
        outcome, seconds, _ = self._draw(spec, as_prompt(prompt, **options))
        if self.realtime:
            await asyncio.sleep(seconds)
        return _deliver(outcome, seconds)

    def stream(self, spec: ModelSpec, prompt: Prompt | str, **options: Any) -> Iterator[Any]:
        """The answer in pieces of a few words, then its ``Completion`` (with the time to the
        first piece); an injected fault fails before the first piece, or after
        ``after_pieces``. With ``realtime`` the pieces arrive over the drawn latency."""
        outcome, seconds, broken = self._draw(spec, as_prompt(prompt, **options), stream=True)
        pieces, pauses = _pieces(outcome, seconds, broken)
        for i, piece in enumerate(pieces):
            if self.realtime:
                time.sleep(pauses[i])
            yield piece
        if self.realtime:
            time.sleep(pauses[-1])
        yield _deliver(broken or outcome, seconds)

    async def astream(
        self, spec: ModelSpec, prompt: Prompt | str, **options: Any
    ) -> AsyncIterator[Any]:
        """``stream`` for async code."""
        outcome, seconds, broken = self._draw(spec, as_prompt(prompt, **options), stream=True)
        pieces, pauses = _pieces(outcome, seconds, broken)
        for i, piece in enumerate(pieces):
            if self.realtime:
                await asyncio.sleep(pauses[i])
            yield piece
        if self.realtime:
            await asyncio.sleep(pauses[-1])
        yield _deliver(broken or outcome, seconds)

    def refused_options(self, spec: ModelSpec, prompt: Prompt) -> dict[str, str]:
        """What the row says the model refuses: dropped offline as a real call drops them."""
        return refused_by_registry(spec)

    def endpoint(self, spec: ModelSpec) -> None:
        """No endpoint: nothing to connect to, so nothing to be unreachable."""
        return None

    def close(self) -> None:
        """Nothing to release."""

    async def aclose(self) -> None:
        """Nothing to release."""

    def _draw(
        self, spec: ModelSpec, prompt: Prompt, *, stream: bool = False
    ) -> tuple[Completion | ProviderError, float, _Fault | None]:
        """(the completion or the fault, its simulated seconds, and for a stream that breaks
        mid-way the fault it breaks with, the completion then being what it would have been)."""
        from ims_kit import tokens

        tokens_in = max(1, tokens.count_prompt(prompt))  # the selector's own count
        max_tokens = prompt.options.max_tokens
        cap = spec.max_output_tokens if max_tokens is None else max_tokens
        with self._lock:
            self.calls += 1
            request_id = f"sim-{self.calls}"
            rng = self._rngs.get(spec.model_id)
            if rng is None:
                rng = self._rngs[spec.model_id] = random.Random(f"{self.seed}:{spec.model_id}")
            latency_ms = latency_median_ms(spec) * math.exp(LATENCY_SIGMA * rng.gauss(0.0, 1.0))
            drawn_out = OUTPUT_MEDIAN_TOKENS * math.exp(OUTPUT_SIGMA * rng.gauss(0.0, 1.0))
            text_seed = rng.getrandbits(32)
            fault = self._next_fault(spec.model_id)
        if fault is None and tokens_in > spec.context_window:
            fault = _Fault(ErrorKind.CONTEXT_OVERFLOW)
        if fault is None and cap < 1:
            fault = _Fault(ErrorKind.INVALID_REQUEST)
        broken = None
        if fault is not None:
            error = _fault_error(
                fault.kind, spec, tokens_in, fault.retry_after_s, request_id, self.timeout_s
            )
            if stream and fault.after_pieces:
                broken = dataclasses.replace(fault, error=error)
            else:
                if fault.kind is ErrorKind.TIMEOUT:
                    seconds = self.timeout_s
                else:
                    seconds = latency_ms / 1000 * FAULT_LATENCY_SHARE
                self._advance(seconds)
                return error, seconds, None
        text = _canned(prompt.last_user)
        if prompt.json_schema is not None:
            text = _json_answer(prompt.json_schema, text)
        if text is None:
            tokens_out = max(1, round(drawn_out))
            text = _filler(spec.model_id, min(tokens_out, cap), random.Random(text_seed))
        else:
            tokens_out = max(1, estimate_tokens(text))
        finish = "stop"
        if tokens_out > cap:
            tokens_out, finish = cap, "length"
            text = text[: cap * 4].rsplit(" ", 1)[0]  # cut at a word, as a real cap would
        self._advance(latency_ms / 1000)
        completion = Completion(
            text=text,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            finish_reason=finish,
            request_id=request_id,
            latency_ms=latency_ms,
            model=spec.model_id,
            ttft_ms=latency_ms * TTFT_SHARE if stream else None,
        )
        return completion, latency_ms / 1000, broken

    def _advance(self, seconds: float) -> None:
        if self.clock is not None:
            self.clock.advance(seconds)


@dataclasses.dataclass(frozen=True)
class _Fault:
    """An injected failure: its kind, the wait it hints, and for a stream how many pieces
    arrive before it (None: it fails before the first)."""

    kind: ErrorKind
    retry_after_s: float | None = None
    after_pieces: int | None = None
    error: ProviderError | None = None  # set when a stream is drawn to break mid-way


def _deliver(outcome: Completion | ProviderError | _Fault, seconds: float) -> Completion:
    """Return the completion, or raise the fault with the time it (simulatedly) took."""
    if isinstance(outcome, _Fault):
        outcome.error.latency_ms = seconds * 1000
        raise outcome.error
    if isinstance(outcome, ProviderError):
        outcome.latency_ms = seconds * 1000
        raise outcome
    return outcome


def _pieces(
    outcome: Completion | ProviderError, seconds: float, broken: _Fault | None
) -> tuple[list[str], list[float]]:
    """The text in pieces of a few words (all of them, or those before a break), and the
    pauses before each and before the end: the first after TTFT_SHARE of the time."""
    if isinstance(outcome, ProviderError):
        return [], [0.0]
    words = re.findall(r"\S+\s*", outcome.text) or ([outcome.text] if outcome.text else [])
    pieces = [
        "".join(words[i : i + WORDS_PER_PIECE]) for i in range(0, len(words), WORDS_PER_PIECE)
    ]
    if broken is not None:
        pieces = pieces[: min(broken.after_pieces or 0, max(0, len(pieces) - 1))]
    first = seconds * TTFT_SHARE
    rest = (seconds - first) / max(1, len(pieces))
    return pieces, [first, *([rest] * len(pieces))]


def _json_answer(schema: Any, canned: str | None) -> str:
    """What a model asked for structured output says: the canned answer when it is valid JSON
    for ``schema`` ("4" for an integer), else the simplest document the schema accepts."""
    import json

    from ims_kit.validators import json_check

    if canned is not None and json_check(schema)(canned)[1] is None:
        return canned
    return json.dumps(_example(schema))


def _example(schema: Any) -> Any:
    """The simplest value a JSON Schema accepts (first of an enum, a const, each property)."""
    if not isinstance(schema, dict):
        return None
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return _example(schema[key][0])
    kind = schema.get("type", "object" if "properties" in schema else "string")
    kind = next((k for k in kind if k != "null"), "null") if isinstance(kind, list) else kind
    if kind == "object":
        return {name: _example(sub) for name, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [_example(schema.get("items") or {})] * max(1, int(schema.get("minItems", 1)))
    if kind == "string":
        return "x" * max(1, int(schema.get("minLength", 7))) if "minLength" in schema else "example"
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        return int(low) + 1 if kind == "integer" else float(low) + 1.0
    return {"boolean": True, "null": None}.get(kind)


def _canned(prompt: str) -> str | None:
    key = " ".join(prompt.lower().split()).rstrip("?.! ")
    m = _ARITHMETIC.match(key)
    if m:
        a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
        return str(a + b if op == "+" else a - b if op == "-" else a * b)
    return _CANNED.get(key)


def _filler(model_id: str, tokens: int, rng: random.Random) -> str:
    """Plausible prose of about ``tokens`` tokens (three words ≈ four tokens)."""
    words = [f"Simulated answer from {model_id}."]
    count = 4
    while count < tokens * 3 // 4:
        sentence = rng.choice(_SENTENCES)
        words.append(sentence)
        count += len(sentence.split())
    return " ".join(words)


def _fault_error(
    kind: ErrorKind,
    spec: ModelSpec,
    tokens_in: int,
    retry_after_s: float | None,
    request_id: str,
    timeout_s: float,
) -> ProviderError:
    """A ``ProviderError`` with the fields a real vendor's answer of this kind would give."""
    common: dict[str, Any] = {"provider": "simulated", "model": spec.model_id}
    if kind is ErrorKind.TIMEOUT:
        message = f"no answer within the timeout ({timeout_s:g} s, simulated)"
        return ProviderError(message, transport="timeout", **common)
    common["request_id"] = request_id
    if kind is ErrorKind.RATE_LIMIT:
        wait = f" Please try again in {retry_after_s:g}s." if retry_after_s is not None else ""
        message = f"Rate limit reached for {spec.model_id} (simulated).{wait}"
        return ProviderError(
            message,
            status=429,
            error_type="rate_limit_error",
            code="rate_limit_exceeded",
            retry_after_s=retry_after_s,
            **common,
        )
    if kind is ErrorKind.OVERLOAD:
        return ProviderError(
            "Overloaded (simulated)",
            status=529,
            error_type="overloaded_error",
            retry_after_s=retry_after_s,
            **common,
        )
    if kind is ErrorKind.CONTEXT_OVERFLOW:
        limit = spec.context_window
        used = max(tokens_in, limit + 1)
        message = (
            f"This model's maximum context length is {limit} tokens. However, your messages "
            f"resulted in {used} tokens. Please reduce the length of the messages. (simulated)"
        )
        return ProviderError(
            message,
            status=400,
            error_type="invalid_request_error",
            code="context_length_exceeded",
            prompt_tokens=used,
            limit_tokens=limit,
            **common,
        )
    if kind is ErrorKind.AUTHENTICATION:
        return ProviderError(
            "Incorrect API key provided (simulated).",
            status=401,
            error_type="authentication_error",
            code="invalid_api_key",
            **common,
        )
    if kind is ErrorKind.INVALID_REQUEST:
        return ProviderError(
            "Invalid request (simulated).",
            status=400,
            error_type="invalid_request_error",
            **common,
        )
    # UNKNOWN: an answer no rule of the classification table recognises (a 3xx here).
    return ProviderError(
        "Unexpected redirect (simulated).",
        status=302,
        error_type="unexpected",
        **common,
    )
