"""Error recovery: classify a failure, then retry, shrink, fall back or fail fast.

``ims_kit.classify`` maps every failure to an ``ErrorKind``, a ``retryable`` flag and a
``scope`` (one table, re-exported here as ``RULES`` / ``classify``). What happens next:

- TIMEOUT, OVERLOAD (transient): retry the same model with exponential backoff and jitter
  (stamina), a bounded number of times, then fall back.
- RATE_LIMIT: wait out the provider's wait hint (Retry-After, RetryInfo, "try again in 644ms")
  when it is within the cap, and retry; without a hint, fall back at once when another
  candidate exists, else retry with backoff; an exhausted quota falls back at once.
- CONTEXT_OVERFLOW: when the vendor counted the answer in (Anthropic's "input length and
  max_tokens exceed context limit"), resend asking for a smaller answer that fits; otherwise
  cut the prompt (the oldest turns first) and resend, a few times at most; then fall back to a
  candidate with a larger window.
- A connection that could not be made (refused, DNS, TLS) is the endpoint's failure: after
  the model's retries every other model behind the same base URL is skipped in this request,
  and the endpoint's breaker, not the model's, counts it.
- AUTHENTICATION and an account out of credit: never retried; the vendor's other models are
  skipped (another vendor's key may work).
- INVALID_REQUEST and CONFIGURATION: never retried and not sent elsewhere: the request (or the
  local set-up) is wrong. A model the vendor does not know, or an option it refuses, is the
  exception: the next candidate is tried.

Every attempt is a usage row and every retry, truncation and fallback an event and an INFO
line on the ``ims_kit.recovery`` logger; breakers are consulted before each call and told its
outcome. Breakers of simulated calls are apart from real ones.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import stamina

from ims_kit import tokens
from ims_kit.classify import ENDPOINT, REQUEST, RULES, Classification, classify, rules_table
from ims_kit.errors import AllModelsFailed, ErrorKind, MissingKeyError, ProviderError
from ims_kit.prompts import Message, Prompt
from ims_kit.records import Answer, Attempt, Completion, ModelSpec

if TYPE_CHECKING:
    from ims_kit.circuits import CircuitBreaker, Permit
    from ims_kit.events import EventLog
    from ims_kit.usage import UsageTracker

__all__ = ["RULES", "Recovery", "RecoveryPolicy", "classify", "is_call_failure", "rules_table"]

K = ErrorKind
log = logging.getLogger(__name__)
MIN_ANSWER_TOKENS = 256  # a smaller max_tokens than this is not worth a resend: cut instead


# -- policy -------------------------------------------------------------------------------------
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


# -- the loop -----------------------------------------------------------------------------------
class _Failed(Exception):
    """One attempt failed; carries what recovery decided about it."""

    def __init__(
        self,
        attempt: Attempt,
        cls: Classification | None,
        wait_s: float | None,
        error: BaseException | None,
    ):
        self.attempt = attempt
        self.cls = cls
        self.wait_s = wait_s  # None: stop retrying this model
        self.error = error


@dataclass
class _Call:
    """The state of one request across its attempts."""

    prompt: Prompt
    strategy: str | None
    workflow_id: str | None
    candidates: list[ModelSpec]
    endpoint_of: Callable[[ModelSpec], str | None]
    provider: str | None = None  # overrides the rows' provider (e.g. "simulated")
    first_model: str | None = None
    index: int = 0  # the candidate being tried
    attempts: list[Attempt] = field(default_factory=list)
    truncations: int = 0
    skip_vendors: set[str] = field(default_factory=set)
    skip_endpoints: set[str] = field(default_factory=set)
    larger_than: int = 0  # after an overflow, only models with a larger window may follow
    current: Prompt | None = None  # what the current model is sent (shorter after a cut)
    missing_keys: list[MissingKeyError] = field(default_factory=list)
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
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

    def give_up(self) -> Exception:
        """The error for a request no candidate served: the missing keys if that was all."""
        if self.missing_keys and len(self.missing_keys) == len(self.attempts):
            return MissingKeyError.of_all(self.missing_keys)
        return AllModelsFailed(self.attempts, request_id=self.request_id)


CallFn = Callable[[ModelSpec, Prompt], Completion]
AsyncCallFn = Callable[[ModelSpec, Prompt], Awaitable[Completion]]


class Recovery:
    """Runs a call over a chain of candidate models with retries, shrinking and breakers."""

    def __init__(
        self,
        breaker: CircuitBreaker,
        usage: UsageTracker,
        events: EventLog,
        policy: RecoveryPolicy | None = None,
    ):
        self.breaker = breaker
        self.usage = usage
        self.events = events
        self.policy = policy or RecoveryPolicy()
        # model id, prompt, fallbacks or None -> the models to try (set by Kit)
        self.chain_for: Callable[[str, str, list[str] | None], list[ModelSpec]] | None = None
        _quiet_stamina()

    def get_circuit_status(self) -> dict[str, dict[str, Any]]:
        """Every breaker with history: state, failures, opened_at, retry_at, ..."""
        return self.breaker.status()

    def _start(self, candidates, prompt, strategy, workflow_id, provider, endpoint_of) -> _Call:
        return _Call(
            prompt,
            strategy,
            workflow_id,
            list(candidates),
            endpoint_of or (lambda spec: None),
            provider=provider,
        )

    # sync driver
    def run(
        self,
        candidates: list[ModelSpec],
        call: CallFn,
        prompt: Prompt,
        *,
        strategy: str | None = None,
        workflow_id: str | None = None,
        provider: str | None = None,
        endpoint_of: Callable[[ModelSpec], str | None] | None = None,
    ) -> Answer:
        """Call the first candidate that works; raise AllModelsFailed when none does.

        ``endpoint_of(spec)`` is where a candidate's calls go (its base URL), so that a refused
        connection rules out the endpoint's other models."""
        state = self._start(candidates, prompt, strategy, workflow_id, provider, endpoint_of)
        for index, spec in enumerate(candidates):
            state.index = index
            if not self._enter(spec, state):
                continue
            try:
                for attempt in self._retrying():
                    with attempt:
                        permits = self._permits(spec, state)
                        started = time.perf_counter()
                        try:
                            completion = call(spec, state.current)
                        except Exception as exc:
                            self._failure(spec, state, permits, exc, started)
                        except BaseException:  # Ctrl-C: no verdict on the model
                            self._abandon(permits)
                            raise
                        else:
                            return self._success(spec, state, permits, completion)
            except _Failed as failed:
                self._after_model(spec, state, failed)
        raise state.give_up()

    # async driver: the same steps, awaited
    async def run_async(
        self,
        candidates: list[ModelSpec],
        call: AsyncCallFn,
        prompt: Prompt,
        *,
        strategy: str | None = None,
        workflow_id: str | None = None,
        provider: str | None = None,
        endpoint_of: Callable[[ModelSpec], str | None] | None = None,
    ) -> Answer:
        """``run`` for async code: awaits ``call`` and sleeps without blocking the loop."""
        state = self._start(candidates, prompt, strategy, workflow_id, provider, endpoint_of)
        for index, spec in enumerate(candidates):
            state.index = index
            if not self._enter(spec, state):
                continue
            try:
                async for attempt in self._retrying():
                    with attempt:
                        permits = self._permits(spec, state)
                        started = time.perf_counter()
                        try:
                            completion = await call(spec, state.current)
                        except Exception as exc:
                            self._failure(spec, state, permits, exc, started)
                        except BaseException:  # cancelled: no verdict on the model
                            self._abandon(permits)
                            raise
                        else:
                            return self._success(spec, state, permits, completion)
            except _Failed as failed:
                self._after_model(spec, state, failed)
        raise state.give_up()

    async def execute_with_recovery(
        self,
        execution_fn: Callable[..., Awaitable[Any]],
        model_id: str,
        prompt: str,
        *,
        fallbacks: list[str] | None = None,
        workflow_id: str | None = None,
    ) -> Any:
        """Protect your own async call ``execution_fn(model_id, prompt)`` with ims_kit's
        classification, retries, fallbacks and breakers; returns what it returns.

        Whatever it raises is classified like ims_kit's own calls: the official SDKs'
        exceptions (openai, anthropic, google-genai), the httpx/httpx2 errors under them, OS
        errors. Fallbacks are ``fallbacks`` (model ids) or, by default, the selector's ranking
        for this prompt. Token counts are read from the result when it reports them (OpenAI
        and Anthropic ``usage``, Gemini ``usage_metadata`` with its thinking tokens), else
        estimated.
        """
        if self.chain_for is None:
            raise RuntimeError("execute_with_recovery needs a Kit (kit.recovery)")
        chain = self.chain_for(model_id, prompt, fallbacks)
        results: dict[str, Any] = {}

        async def call(spec: ModelSpec, sent: Prompt) -> Completion:
            started = time.perf_counter()
            result = await execution_fn(spec.model_id, sent.last_user)
            results["value"] = result
            tin, tout = reported_tokens(result)
            latency = (time.perf_counter() - started) * 1000
            return Completion("", tin, tout, None, None, latency, spec.api_model)

        one_turn = Prompt((Message("user", prompt),))
        await self.run_async(chain, call, one_turn, workflow_id=workflow_id)
        return results["value"]

    # -- steps shared by both drivers ---------------------------------------------------------
    def _retrying(self):
        p = self.policy

        def on(exc: BaseException) -> bool | float:
            if not isinstance(exc, _Failed) or exc.wait_s is None:
                return False
            return exc.wait_s if exc.wait_s >= 0 else True

        return stamina.retry_context(
            on=on,
            attempts=1 + p.retries + p.max_truncations,
            timeout=p.model_timeout_s,
            wait_initial=p.wait_initial_s,
            wait_max=p.wait_max_s,
            wait_jitter=p.wait_jitter_s,
        )

    def _enter(self, spec: ModelSpec, state: _Call) -> bool:
        """Whether to try this candidate: not ruled out, and its endpoint's breaker closed."""
        if state.skipped(spec):
            return False
        state.current = state.prompt
        endpoint = state.endpoint_of(spec)
        if endpoint is None or state.simulated(spec):
            return True
        if self.breaker.unavailable(scope="endpoint").get(endpoint) is None:
            return True
        retry_at = self.breaker.unavailable(scope="endpoint")[endpoint]
        detail = f"endpoint {endpoint} circuit open until {retry_at}"
        state.attempts.append(
            Attempt(spec.model_id, "CIRCUIT_OPEN", action="fallback", detail=detail)
        )
        state.skip_endpoints.add(endpoint)
        return False

    def _permits(self, spec: ModelSpec, state: _Call) -> list[Permit]:
        """The model's permit (and its endpoint's, for a probe); _Failed while it is open."""
        simulated = state.simulated(spec)
        permit = self.breaker.allow(spec.model_id, simulated=simulated)
        if permit is None:
            key = f"{spec.model_id} [simulated]" if simulated else spec.model_id
            retry_at = self.breaker.status().get(key, {}).get("retry_at")
            attempt = Attempt(
                spec.model_id,
                "CIRCUIT_OPEN",
                action="fallback",
                detail=f"circuit open until {retry_at}",
            )
            state.attempts.append(attempt)
            raise _Failed(attempt, None, None, None)
        permits = [permit]
        endpoint = state.endpoint_of(spec)
        if endpoint is not None and not simulated:
            endpoint_permit = self.breaker.allow(endpoint, scope="endpoint")
            if endpoint_permit is not None:
                permits.append(endpoint_permit)
        return permits

    def _success(
        self, spec: ModelSpec, state: _Call, permits: list[Permit], c: Completion
    ) -> Answer:
        sent = state.current or state.prompt
        for permit in permits:
            self.breaker.record_success(permit)
        tin, tout, source = c.tokens_in, c.tokens_out, "provider"
        if tin is None or tout is None:
            source = "estimate"
            tin = tin if tin is not None else tokens.count_prompt(sent, spec.model_id)
            tout = tout if tout is not None else tokens.count(c.text, spec.model_id).tokens
        record = self._log(
            spec, state, tin, tout, source, c.latency_ms, True, None, response=c.text
        )
        state.attempts.append(Attempt(spec.model_id, None, 200, c.request_id, c.latency_ms))
        return Answer(
            text=c.text,
            model_id=spec.model_id,
            vendor=spec.vendor,
            provider=state.provider or spec.provider,
            tokens_in=tin,
            tokens_out=tout,
            token_source=source,
            cost_usd=record.cost_usd,
            latency_ms=sum(a.latency_ms for a in state.attempts),
            call_id=record.call_id,
            finish_reason=c.finish_reason,
            request_id=state.request_id,
            vendor_request_id=c.request_id,
            vendor_model=c.model or None,
            attempts=tuple(state.attempts),
            truncated=sent.messages != state.prompt.messages,
        )

    def _failure(
        self,
        spec: ModelSpec,
        state: _Call,
        permits: list[Permit],
        exc: Exception,
        started: float,
    ) -> None:
        """Record a failed attempt and raise _Failed saying whether to retry and after what."""
        latency = (time.perf_counter() - started) * 1000
        model_permit, *endpoint_permits = permits
        if not is_call_failure(exc):
            # A bug or a bad argument, not the model failing: no retry, no fallback, no
            # breaker count; the caller sees the original exception.
            for permit in permits:
                self.breaker.release(permit)
            raise exc
        if isinstance(exc, MissingKeyError):
            for permit in permits:
                self.breaker.release(permit)
            attempt = Attempt(spec.model_id, "MISSING_KEY", action="fallback", detail=str(exc))
            state.attempts.append(attempt)
            state.missing_keys.append(exc)
            raise _Failed(attempt, None, None, exc) from exc
        cls = classify(exc)
        err = exc if isinstance(exc, ProviderError) else _as_error(exc)
        if cls.scope == ENDPOINT:  # the endpoint failed, not the model: its breaker counts
            self.breaker.release(model_permit)
            for permit in endpoint_permits:
                self.breaker.record_failure(permit, cls.kind, counted=cls.counted)
        else:
            self.breaker.record_failure(model_permit, cls.kind, counted=cls.counted)
            for permit in endpoint_permits:  # the endpoint answered: it is reachable
                self.breaker.record_success(permit)
        if err.latency_ms is not None:
            latency = err.latency_ms  # e.g. a simulated timeout's simulated duration
        # A failed request is not billed: the row counts no tokens, so it costs $0 (not NULL).
        self._log(spec, state, 0, 0, "estimate", latency, False, cls.kind)
        wait, action, detail, next_prompt = self._decide(spec, state, cls, err)
        message = err.message[:160]
        if err.transport and err.status is None:
            message = f"{err.transport}: {message}"
        attempt = Attempt(
            spec.model_id,
            cls.kind.value,
            err.status,
            err.request_id,
            latency,
            action,
            detail,
            message,
        )
        state.attempts.append(attempt)
        if action in ("retry", "truncate", "shrink"):
            event = {"retry": "recovery.retry", "truncate": "recovery.truncated"}
            self.events.emit(
                event.get(action, "recovery.shrunk"),
                spec.model_id,
                error_kind=cls.kind.value,
                status=err.status,
                detail=detail,
                wait_s=wait,
                workflow_id=state.workflow_id,
                request_id=state.request_id,
            )
            log.info("%s: %s: %s (%s)", spec.model_id, cls.kind.value, action, detail)
        if next_prompt is not None:
            state.current = next_prompt  # the retry sends the shorter prompt or answer
        raise _Failed(attempt, cls, wait, exc) from exc

    def _abandon(self, permits: list[Permit]) -> None:
        """A call interrupted before its verdict: a probe counts as failed and frees its slot."""
        for permit in permits:
            if permit.probe:
                self.breaker.cancelled(permit)

    def _decide(self, spec: ModelSpec, state: _Call, cls: Classification, err: ProviderError):
        """-> (wait_s or None, action, detail, next prompt or None)."""
        p = self.policy
        sent = state.current or state.prompt
        tries = sum(
            1
            for a in state.attempts
            if a.model_id == spec.model_id and a.error_kind not in (None, K.CONTEXT_OVERFLOW.value)
        )
        if cls.kind is K.CONTEXT_OVERFLOW:
            return self._overflow(spec, state, err, sent)
        if cls.scope == REQUEST:
            what = "the local set-up" if cls.kind is K.CONFIGURATION else "the request"
            return None, "fail", f"{what} was refused: not retried, not sent elsewhere", None
        if not cls.retryable:
            return None, "fallback", cls.rule, None
        if err.retried_by_provider:
            return None, "fallback", f"{cls.rule}: the provider already retried it", None
        if tries >= p.retries or self.breaker.is_open(
            spec.model_id, simulated=state.simulated(spec)
        ):
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

    def _overflow(self, spec: ModelSpec, state: _Call, err: ProviderError, sent: Prompt):
        """Shrink the answer asked for when that makes it fit, else cut the prompt."""
        p = self.policy
        if not (p.truncate and state.truncations < p.max_truncations):
            return None, "fallback", "still too long: trying a larger window", None
        state.truncations += 1
        if err.output_tokens and err.limit_tokens and err.prompt_tokens:
            room = int((err.limit_tokens - err.prompt_tokens) * 0.98)
            if room >= min(MIN_ANSWER_TOKENS, err.output_tokens):
                detail = f"max_tokens {err.output_tokens:,} -> {room:,} to fit the window"
                return 0.0, "shrink", detail, sent.with_max_tokens(room)
        budget = self._fit(spec, err, sent)
        shorter = tokens.truncate_prompt(sent, budget, spec.model_id)
        return 0.0, "truncate", f"truncated to ~{budget:,} tokens", shorter

    def _fit(self, spec: ModelSpec, err: ProviderError, prompt: Prompt) -> int:
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

    def _after_model(self, spec: ModelSpec, state: _Call, failed: _Failed) -> None:
        """Leave this model: fail the request, or note what the next candidates must satisfy."""
        cls = failed.cls
        if cls is not None and cls.scope == REQUEST and cls.kind is not K.CONTEXT_OVERFLOW:
            raise AllModelsFailed(
                state.attempts, f"the {_what(cls)} was refused", request_id=state.request_id
            ) from failed.error
        if cls is not None and cls.account_wide:
            state.skip_vendors.add(spec.vendor)
        if cls is not None and cls.scope == ENDPOINT:
            endpoint = state.endpoint_of(spec) or getattr(failed.error, "endpoint", None)
            if endpoint:
                state.skip_endpoints.add(endpoint)
        if cls is not None and cls.kind is K.CONTEXT_OVERFLOW:
            state.larger_than = max(state.larger_than, spec.context_window)
        state.first_model = state.first_model or spec.model_id
        self.events.emit(
            "recovery.fallback",
            spec.model_id,
            error_kind=failed.attempt.error_kind,
            detail=failed.attempt.detail,
            workflow_id=state.workflow_id,
            request_id=state.request_id,
        )
        log.info(
            "%s: %s: fallback (%s)", spec.model_id, failed.attempt.error_kind, failed.attempt.detail
        )

    def _log(
        self,
        spec: ModelSpec,
        state: _Call,
        tin: int,
        tout: int,
        source: str,
        latency_ms: float,
        success: bool,
        kind: ErrorKind | None,
        response: str | None = None,
    ):
        fallback_from = state.first_model if state.first_model != spec.model_id else None
        state.logged += 1
        sent = state.current or state.prompt
        return self.usage.log_execution(
            model_id=spec.model_id,
            vendor_id=spec.vendor,
            tokens_in=tin,
            tokens_out=tout,
            cost_per_mil_in=spec.cost_per_mil_in,
            cost_per_mil_out=spec.cost_per_mil_out,
            latency_ms=latency_ms,
            success=success,
            error_kind=kind,
            provider=state.provider or spec.provider,
            token_source=source,
            workflow_id=state.workflow_id,
            attempt=state.logged,
            request_id=state.request_id,
            fallback_from=fallback_from,
            strategy=state.strategy,
            prompt=sent.text,
            response=response,
        )


def _what(cls: Classification) -> str:
    return "local set-up" if cls.kind is K.CONFIGURATION else "request"


def _as_error(exc: BaseException) -> ProviderError:
    from ims_kit.classify import as_provider_error

    return as_provider_error(exc)


_SDK_ROOTS = frozenset(
    {"httpx", "httpcore", "httpx2", "httpcore2", "openai", "anthropic", "google", "aiohttp"}
)


def is_call_failure(exc: BaseException) -> bool:
    """True for failures of the model call itself: a provider's or transport's error, or an
    official SDK's (openai, anthropic, google-genai and the httpx/httpx2/aiohttp errors under
    them); False for a bug in the caller's code, which is raised as it is."""
    if isinstance(exc, ProviderError | MissingKeyError | OSError | TimeoutError):
        return True
    if isinstance(exc, asyncio.TimeoutError):
        return True
    if type(exc).__module__.split(".")[0] in _SDK_ROOTS:
        return True
    for name in ("status_code", "code"):
        status = getattr(exc, name, None)
        if isinstance(status, int) and not isinstance(status, bool) and 100 <= status < 600:
            return True
    return False


def reported_tokens(result: Any) -> tuple[int | None, int | None]:
    """Token counts from an SDK response or dict, when it reports them (Gemini's thinking
    tokens are output, as they are billed)."""
    usage = getattr(result, "usage", None) or getattr(result, "usage_metadata", None)
    if usage is None and isinstance(result, dict):
        usage = result.get("usage") or result.get("usageMetadata") or result.get("usage_metadata")
    if usage is None:
        return None, None

    def get(*names: str) -> int | None:
        for n in names:
            v = usage.get(n) if isinstance(usage, dict) else getattr(usage, n, None)
            if isinstance(v, int) and not isinstance(v, bool):
                return v
        return None

    out = get(
        "completion_tokens", "output_tokens", "candidatesTokenCount", "candidates_token_count"
    )
    thoughts = get("thoughtsTokenCount", "thoughts_token_count")
    if thoughts:
        out = (out or 0) + thoughts
    return (get("prompt_tokens", "input_tokens", "promptTokenCount", "prompt_token_count"), out)


# -- stamina's retry notices ---------------------------------------------------------------------
class _QuietRetries:
    """A stamina on-retry hook: ims_kit's own retries are INFO lines on ``ims_kit.recovery``
    (its events and usage rows already record them), every other retry goes to the hooks
    that were set before, as it did."""

    def __init__(self, others: tuple):
        self.others = others

    def __call__(self, details: Any) -> None:
        if isinstance(details.caused_by, _Failed):
            log.debug("retry %s scheduled in %.3fs", details.retry_num, details.wait_for)
            return
        for hook in self.others:
            hook(details)


def _quiet_stamina() -> None:
    """Keep ims_kit's retries out of stamina's WARNING lines (installed once per process)."""
    from stamina import instrumentation

    hooks = instrumentation.get_on_retry_hooks()
    if not any(isinstance(h, _QuietRetries) for h in hooks):
        instrumentation.set_on_retry_hooks([_QuietRetries(tuple(hooks))])
