"""What recovery decides after a failed attempt, as pure functions of the policy, the
request so far and what the vendor said; ``ims_kit.recovery`` runs the attempts.

The rules, in order: an overflow shrinks the answer asked for (when the vendor counted it in)
or cuts the prompt; a failure of the request itself (or of the local set-up) fails it; one
that waiting cannot fix, or that the provider already retried, goes to the next candidate; a
rate limit waits out the vendor's hint within the cap, or, without one, goes to the next
candidate, or retries with backoff when none is left; anything transient retries with
exponential backoff, within the policy's bound.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ims_kit import tokens
from ims_kit.classify import REQUEST, Classification
from ims_kit.errors import (
    AllModelsFailed,
    BudgetExceeded,
    ErrorKind,
    MissingKeyError,
    ProviderError,
)
from ims_kit.ids import new_id
from ims_kit.prompts import Prompt
from ims_kit.records import Attempt, ModelSpec

K = ErrorKind
MIN_ANSWER_TOKENS = 256  # a smaller max_tokens than this is not worth a resend: cut instead
# (wait in seconds, or -1 for stamina's backoff, or None to stop; action; why; what to send)
Decision = tuple[float | None, str, str, Prompt | None]


@dataclass(frozen=True)
class RecoveryPolicy:
    """How hard recovery tries before giving up on a model."""

    retries: int = 2  # extra tries of the same model for TIMEOUT / OVERLOAD / RATE_LIMIT
    max_truncations: int = 2
    retry_after_cap_s: float = 10.0
    wait_initial_s: float = 0.5
    wait_max_s: float = 8.0
    wait_jitter_s: float = 0.5
    model_timeout_s: float = 60.0  # total retry budget for one model
    truncate: bool = True
    # invalid JSON answers from this many models end the request: the schema is likely the
    # problem, and every further candidate would be billed for the same failure
    invalid_output_models: int = 3
    # instead of sleeping, hand each vendor-asked wait to this (a simulated clock's advance)
    wait_for: Callable[[float], None] | None = None


@dataclass
class RequestState:
    """The state of one request across its attempts."""

    prompt: Prompt
    strategy: str | None = None
    workflow_id: str | None = None
    candidates: list[ModelSpec] = field(default_factory=list)
    endpoint_of: Callable[[ModelSpec], str | None] = lambda spec: None
    provider: str | None = None  # overrides the rows' provider (e.g. "simulated")
    # the options a model refuses, and why (dropped before sending)
    refused_options: Callable[[ModelSpec, Prompt], dict[str, str]] = lambda spec, prompt: {}
    check: Callable[[str], tuple[Any, str | None]] | None = None  # (parsed answer, problem)
    dropped: dict[str, str] = field(default_factory=dict)  # by the latest call
    first_model: str | None = None
    index: int = 0  # the candidate being tried
    attempts: list[Attempt] = field(default_factory=list)
    truncations: int = 0
    skip_vendors: set[str] = field(default_factory=set)
    skip_endpoints: set[str] = field(default_factory=set)
    larger_than: int = 0  # after an overflow, only models with a larger window may follow
    current: Prompt | None = None  # what the current model is sent (shorter after a cut)
    missing_keys: list[MissingKeyError] = field(default_factory=list)
    refusals: list[BudgetExceeded] = field(default_factory=list)  # budgets that said no
    reservation: Any = None  # the current attempt's budget reservation, until its row
    deferred: bool = False  # async: rows are handed to the writer thread and awaited
    stream: bool = False  # a streamed request
    reason: str | None = None  # why the selector chose the first candidate
    trace_context: Any = None  # the request span's, when telemetry is on
    trace_start_ns: int = 0  # when that span began
    pending: list[Any] = field(default_factory=list)  # their futures, until committed
    request_id: str = field(default_factory=new_id)
    logged: int = 0  # attempts that reached a provider (usage rows), for their numbers

    def simulated(self, spec: ModelSpec) -> bool:
        return (self.provider or spec.provider) == "simulated"

    def skipped(self, spec: ModelSpec) -> bool:
        """True when an earlier failure rules this candidate out for the rest of the request."""
        if spec.vendor in self.skip_vendors:
            return True
        if self.larger_than and spec.context_window <= self.larger_than:
            return True
        return bool(self.skip_endpoints) and self.endpoint_of(spec) in self.skip_endpoints

    def has_next(self) -> bool:
        """Whether a candidate after the current one would still be tried."""
        return any(not self.skipped(s) for s in self.candidates[self.index + 1 :])

    def tries_of(self, model_id: str, kind: ErrorKind | None = None) -> int:
        """Failed attempts on this model so far (of ``kind``, else of any kind but overflows
        and invalid answers, which are cut or asked again, not retried)."""
        if kind is not None:
            return sum(1 for a in self.attempts if a.model_id == model_id and a.error_kind == kind)
        apart = (None, K.CONTEXT_OVERFLOW.value, K.INVALID_OUTPUT.value)
        return sum(1 for a in self.attempts if a.model_id == model_id and a.error_kind not in apart)

    def give_up(self) -> Exception:
        """The error for a request no candidate served: the missing keys if that was all, the
        budget that refused if nothing was sent but for that."""
        if self.missing_keys and len(self.missing_keys) == len(self.attempts):
            return MissingKeyError.of_all(self.missing_keys)
        unsent = len(self.refusals) + len(self.missing_keys)
        if self.refusals and unsent == len(self.attempts):
            return self.refusals[0]
        return AllModelsFailed(self.attempts, request_id=self.request_id)


def decide(
    p: RecoveryPolicy,
    spec: ModelSpec,
    state: RequestState,
    cls: Classification,
    err: ProviderError,
    *,
    breaker_open: bool,
) -> Decision:
    """What to do after this failed attempt: wait and retry, shrink and resend, fall back, or
    fail. Pure: it reads the policy, the request so far and what the vendor said."""
    sent = state.current or state.prompt
    tries = state.tries_of(spec.model_id)
    if cls.kind is K.CONTEXT_OVERFLOW:
        return _overflow(p, spec, state, err, sent)
    if cls.kind is K.INVALID_OUTPUT:
        if not state.tries_of(spec.model_id, K.INVALID_OUTPUT):
            return 0.0, "retry", "the answer is not what the schema asks for: asking again", None
        models = {a.model_id for a in state.attempts if a.error_kind == K.INVALID_OUTPUT}
        if len(models | {spec.model_id}) >= p.invalid_output_models:
            n = p.invalid_output_models
            return None, "fail", f"invalid answers from {n} models: check the schema", None
        return None, "fallback", "an invalid answer again: next candidate", None
    if cls.scope == REQUEST:
        what = "the local set-up" if cls.kind is K.CONFIGURATION else "the request"
        return None, "fail", f"{what} was refused: not retried, not sent elsewhere", None
    if not cls.retryable:
        return None, "fallback", cls.rule, None
    if err.retried_by_provider:
        return None, "fallback", f"{cls.rule}: the provider already retried it", None
    if tries >= p.retries or breaker_open:
        return None, "fallback", f"{cls.rule}: retries exhausted", None
    if cls.kind is K.RATE_LIMIT:
        after = err.retry_after_s
        if after is None:
            if state.has_next():
                return None, "fallback", "rate limited, no wait hint: next candidate", None
            return (
                -1.0,
                "retry",
                "rate limited, no wait hint, no other candidate: backoff",
                None,
            )
        if after > p.retry_after_cap_s:
            return None, "fallback", f"rate limited for {after:g}s > cap", None
        return float(after), "retry", f"waiting {after:g}s as the provider asked", None
    return -1.0, "retry", f"{cls.rule}: backoff", None


def _overflow(
    p: RecoveryPolicy, spec: ModelSpec, state: RequestState, err: ProviderError, sent: Prompt
) -> Decision:
    """Shrink the answer asked for when that makes it fit, else cut the prompt."""
    if not (p.truncate and state.truncations < p.max_truncations):
        return None, "fallback", "still too long: trying a larger window", None
    state.truncations += 1
    if err.output_tokens and err.limit_tokens and err.prompt_tokens:
        room = int((err.limit_tokens - err.prompt_tokens) * 0.98)
        if room >= min(MIN_ANSWER_TOKENS, err.output_tokens):
            detail = f"max_tokens {err.output_tokens:,} -> {room:,} to fit the window"
            return 0.0, "shrink", detail, sent.with_max_tokens(room)
    budget = fit(spec, err, sent)
    shorter = tokens.truncate_prompt(sent, budget, spec.model_id)
    return 0.0, "truncate", f"truncated to ~{budget:,} tokens", shorter


def fit(spec: ModelSpec, err: ProviderError, prompt: Prompt) -> int:
    """Token budget (in our count) for a prompt the provider found too long.

    The target is the window less room for the answer (what was asked for, else a share
    of the window), with 5% slack. When the provider reported its own count ("130532
    tokens > 128000"), ours is scaled by its ratio, since its tokenizer is the one that
    decides; otherwise we cut at least a quarter.
    """
    ours = tokens.count_prompt(prompt, spec.model_id)
    limit = err.limit_tokens or spec.context_window
    reserve = prompt.options.max_tokens or min(spec.max_output_tokens, max(256, limit // 8))
    target = max(1, int((limit - min(reserve, limit // 2)) * 0.95))
    if err.prompt_tokens:
        return max(1, min(ours - 1, int(ours * target / err.prompt_tokens)))
    return max(1, min(target, int(ours * 0.75)))
