"""Error recovery: classify a failure, then retry, truncate, fall back or fail fast.

``ims_kit.classify`` maps every failure to an ``ErrorKind`` and a ``retryable`` flag (one
table, re-exported here as ``RULES`` / ``classify``). What happens next:

- TIMEOUT, OVERLOAD (transient): retry the same model with exponential backoff and jitter
  (stamina), a bounded number of times, then fall back.
- RATE_LIMIT: wait out a short Retry-After (capped, since stamina does not cap a wait
  returned by the predicate) and retry; without one, with a long one, or for an exhausted
  quota, fall back at once.
- CONTEXT_OVERFLOW: truncate the prompt to fit and resend (a few times at most), then fall
  back to a candidate with a larger window.
- AUTHENTICATION: never retried; falls back to another vendor (another key may work).
- INVALID_REQUEST: never retried and not sent elsewhere: the request itself is wrong.

Every attempt is a usage row and every retry, truncation and fallback an event; breakers
are consulted before each call and told its outcome.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import stamina

from ims_kit import tokens
from ims_kit.classify import RULES, Classification, classify, rules_table
from ims_kit.errors import AllModelsFailed, ErrorKind, MissingKeyError, ProviderError
from ims_kit.records import Answer, Attempt, Completion, ModelSpec

if TYPE_CHECKING:
    from ims_kit.circuits import CircuitBreaker, Permit
    from ims_kit.events import EventLog
    from ims_kit.usage import UsageTracker

__all__ = ["RULES", "Recovery", "RecoveryPolicy", "classify", "rules_table"]

K = ErrorKind


# -- policy -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RecoveryPolicy:
    """How hard recovery tries before giving up on a model."""

    retries: int = 2  # extra tries of the same model for TIMEOUT / OVERLOAD / short RATE_LIMIT
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

    prompt: str
    strategy: str | None
    workflow_id: str | None
    first_model: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    truncations: int = 0
    skip_vendors: set[str] = field(default_factory=set)
    larger_than: int = 0  # after an overflow, only models with a larger window may follow
    provider: str | None = None  # overrides the rows' provider (e.g. "simulated")
    current_prompt: str = ""  # what the current model is sent (shorter after a truncation)
    missing_keys: list[MissingKeyError] = field(default_factory=list)
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    logged: int = 0  # attempts that reached a provider (usage rows), for their numbers

    def give_up(self) -> Exception:
        """The error for a request no candidate served: the missing keys if that was all."""
        if self.missing_keys and len(self.missing_keys) == len(self.attempts):
            return MissingKeyError.of_all(self.missing_keys)
        return AllModelsFailed(self.attempts, request_id=self.request_id)


CallFn = Callable[[ModelSpec, str], Completion]
AsyncCallFn = Callable[[ModelSpec, str], Awaitable[Completion]]


class Recovery:
    """Runs a call over a chain of candidate models with retries, truncation and breakers."""

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

    def get_circuit_status(self) -> dict[str, dict[str, Any]]:
        """Every model with breaker history: state, failures, opened_at, retry_at, ..."""
        return self.breaker.status()

    # sync driver
    def run(
        self,
        candidates: list[ModelSpec],
        call: CallFn,
        prompt: str,
        *,
        strategy: str | None = None,
        workflow_id: str | None = None,
        provider: str | None = None,
    ) -> Answer:
        """Call the first candidate that works; raise AllModelsFailed when none does."""
        state = _Call(prompt, strategy, workflow_id, provider=provider)
        for spec in candidates:
            if self._skip(spec, state):
                continue
            state.current_prompt = state.prompt
            try:
                for attempt in self._retrying(state):
                    with attempt:
                        permit = self._permit(spec, state)
                        started = time.perf_counter()
                        try:
                            completion = call(spec, state.current_prompt)
                        except Exception as exc:
                            self._failure(spec, state, permit, exc, started)
                        except BaseException:  # Ctrl-C: no verdict on the model
                            self._abandon(permit)
                            raise
                        else:
                            return self._success(spec, state, permit, completion)
            except _Failed as failed:
                self._after_model(spec, state, failed)
        raise state.give_up()

    # async driver: the same steps, awaited
    async def run_async(
        self,
        candidates: list[ModelSpec],
        call: AsyncCallFn,
        prompt: str,
        *,
        strategy: str | None = None,
        workflow_id: str | None = None,
        provider: str | None = None,
    ) -> Answer:
        """``run`` for async code: awaits ``call`` and sleeps without blocking the loop."""
        state = _Call(prompt, strategy, workflow_id, provider=provider)
        for spec in candidates:
            if self._skip(spec, state):
                continue
            state.current_prompt = state.prompt
            try:
                async for attempt in self._retrying(state):
                    with attempt:
                        permit = self._permit(spec, state)
                        started = time.perf_counter()
                        try:
                            completion = await call(spec, state.current_prompt)
                        except Exception as exc:
                            self._failure(spec, state, permit, exc, started)
                        except BaseException:  # cancelled: no verdict on the model
                            self._abandon(permit)
                            raise
                        else:
                            return self._success(spec, state, permit, completion)
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

        Fallbacks are ``fallbacks`` (model ids) or, by default, the selector's ranking for
        this prompt. Token counts are read from the result when it reports them
        (``usage.prompt_tokens``/``input_tokens``...), else estimated.
        """
        if self.chain_for is None:
            raise RuntimeError("execute_with_recovery needs a Kit (kit.recovery)")
        chain = self.chain_for(model_id, prompt, fallbacks)
        results: dict[str, Any] = {}

        async def call(spec: ModelSpec, text: str) -> Completion:
            started = time.perf_counter()
            result = await execution_fn(spec.model_id, text)
            results["value"] = result
            tin, tout = _reported_tokens(result)
            return Completion(
                "",  # the caller's result is returned as it is, not as text
                tin,
                tout,
                None,
                None,
                (time.perf_counter() - started) * 1000,
                spec.api_model,
            )

        await self.run_async(chain, call, prompt, workflow_id=workflow_id)
        return results["value"]

    # -- steps shared by both drivers ---------------------------------------------------------
    def _retrying(self, state: _Call):
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

    def _skip(self, spec: ModelSpec, state: _Call) -> bool:
        if spec.vendor in state.skip_vendors:
            return True
        return bool(state.larger_than) and spec.context_window <= state.larger_than

    def _permit(self, spec: ModelSpec, state: _Call) -> Permit:
        permit = self.breaker.allow(spec.model_id)
        if permit is None:
            retry_at = self.breaker.status().get(spec.model_id, {}).get("retry_at")
            attempt = Attempt(
                spec.model_id,
                "CIRCUIT_OPEN",
                action="fallback",
                detail=f"circuit open until {retry_at}",
            )
            state.attempts.append(attempt)
            raise _Failed(attempt, None, None, None)
        return permit

    def _success(self, spec: ModelSpec, state: _Call, permit: Permit, c: Completion) -> Answer:
        prompt_sent = state.current_prompt
        self.breaker.record_success(permit)
        tin, tout, source = c.tokens_in, c.tokens_out, "provider"
        if tin is None or tout is None:
            source = "estimate"
            tin = tin if tin is not None else tokens.count(prompt_sent, spec.model_id).tokens
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
            attempts=tuple(state.attempts),
            truncated=prompt_sent != state.prompt,
        )

    def _failure(
        self, spec: ModelSpec, state: _Call, permit: Permit, exc: Exception, started: float
    ) -> None:
        """Record a failed attempt and raise _Failed saying whether to retry and after what."""
        prompt_sent = state.current_prompt
        latency = (time.perf_counter() - started) * 1000
        if not is_call_failure(exc):
            # A bug or a bad argument, not the model failing: no retry, no fallback, no
            # breaker count; the caller sees the original exception.
            self.breaker.release(permit)
            raise exc
        if isinstance(exc, MissingKeyError):
            self.breaker.release(permit)
            attempt = Attempt(spec.model_id, "MISSING_KEY", action="fallback", detail=str(exc))
            state.attempts.append(attempt)
            state.missing_keys.append(exc)
            raise _Failed(attempt, None, None, exc) from exc
        cls = classify(exc)
        err = exc if isinstance(exc, ProviderError) else None
        status = err.status if err else None
        request_id = err.request_id if err else None
        self.breaker.record_failure(permit, cls.kind)
        if err is not None and err.latency_ms is not None:
            latency = err.latency_ms  # e.g. a simulated timeout's simulated duration
        # A failed request is not billed: the row counts no tokens, so it costs $0 (not NULL).
        self._log(spec, state, 0, 0, "estimate", latency, False, cls.kind)
        wait, action, detail, next_prompt = self._decide(spec, state, cls, err, prompt_sent)
        message = (err.message if err else str(exc))[:160]
        if err is not None and err.transport and err.status is None:
            message = f"{err.transport}: {message}"
        attempt = Attempt(
            spec.model_id, cls.kind.value, status, request_id, latency, action, detail, message
        )
        state.attempts.append(attempt)
        if action in ("retry", "truncate"):
            self.events.emit(
                f"recovery.{'retry' if action == 'retry' else 'truncated'}",
                spec.model_id,
                error_kind=cls.kind.value,
                status=status,
                detail=detail,
                wait_s=wait,
                workflow_id=state.workflow_id,
            )
        if action == "truncate":
            state.current_prompt = next_prompt  # the retry sends the shorter prompt
        raise _Failed(attempt, cls, wait, exc) from exc

    def _abandon(self, permit: Permit) -> None:
        """A call interrupted before its verdict: a probe counts as failed and frees its slot."""
        if permit.probe:
            self.breaker.cancelled(permit)

    def _decide(
        self,
        spec: ModelSpec,
        state: _Call,
        cls: Classification,
        err: ProviderError | None,
        prompt_sent: str,
    ):
        """-> (wait_s or None, action, detail, next prompt)."""
        p = self.policy
        tries = sum(
            1
            for a in state.attempts
            if a.model_id == spec.model_id and a.error_kind not in (None, K.CONTEXT_OVERFLOW.value)
        )
        if cls.kind is K.CONTEXT_OVERFLOW:
            if p.truncate and state.truncations < p.max_truncations:
                budget = self._fit(spec, err, prompt_sent)
                state.truncations += 1
                shorter = tokens.truncate(prompt_sent, budget, spec.model_id)
                return 0.0, "truncate", f"truncated to ~{budget:,} tokens", shorter
            return None, "fallback", "still too long: trying a larger window", prompt_sent
        if cls.kind is K.INVALID_REQUEST:
            return None, "fail", "the request is invalid: not retried, not sent elsewhere", None
        if not cls.retryable:
            return None, "fallback", cls.rule, prompt_sent
        if tries >= p.retries or self.breaker.is_open(spec.model_id):
            return None, "fallback", f"{cls.rule}: retries exhausted", prompt_sent
        if cls.kind is K.RATE_LIMIT:
            after = err.retry_after_s if err else None
            if after is None or after > p.retry_after_cap_s:
                why = "no Retry-After" if after is None else f"Retry-After {after:g}s > cap"
                return None, "fallback", f"rate limited ({why})", prompt_sent
            return float(after), "retry", f"Retry-After {after:g}s", prompt_sent
        return -1.0, "retry", f"{cls.rule}: backoff", prompt_sent

    def _fit(self, spec: ModelSpec, err: ProviderError | None, prompt: str) -> int:
        """Token budget (in our count) for a prompt the provider found too long.

        The target is the window less room for the answer, with 5% slack. When the provider
        reported its own count ("130532 tokens > 128000"), ours is scaled by its ratio,
        since its tokenizer is the one that decides; otherwise we cut at least a quarter.
        """
        ours = tokens.count(prompt, spec.model_id).tokens
        limit = err.limit_tokens if err is not None and err.limit_tokens else spec.context_window
        reserve = min(spec.max_output_tokens, max(256, limit // 8))
        target = max(1, int((limit - reserve) * 0.95))
        if err is not None and err.prompt_tokens:
            return max(1, min(ours - 1, int(ours * target / err.prompt_tokens)))
        return max(1, min(target, int(ours * 0.75)))

    def _after_model(self, spec: ModelSpec, state: _Call, failed: _Failed) -> None:
        """Leave this model: fail the request, or note what the next candidates must satisfy."""
        if failed.cls is not None and failed.cls.kind is K.INVALID_REQUEST:
            raise AllModelsFailed(
                state.attempts, "the request was refused as invalid", request_id=state.request_id
            )
        if failed.cls is not None and failed.cls.account_wide:
            state.skip_vendors.add(spec.vendor)
        if failed.cls is not None and failed.cls.kind is K.CONTEXT_OVERFLOW:
            state.larger_than = max(state.larger_than, spec.context_window)
        state.first_model = state.first_model or spec.model_id
        self.events.emit(
            "recovery.fallback",
            spec.model_id,
            error_kind=failed.attempt.error_kind,
            detail=failed.attempt.detail,
            workflow_id=state.workflow_id,
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
            prompt=state.current_prompt,
            response=response,
        )


def is_call_failure(exc: BaseException) -> bool:
    """True for failures of the model call itself (provider, transport, SDK HTTP errors)."""
    if isinstance(exc, ProviderError | MissingKeyError | OSError | TimeoutError):
        return True
    if type(exc).__module__.split(".")[0] in ("httpx", "httpcore"):
        return True
    status = getattr(exc, "status_code", None) or getattr(exc, "status", None)
    return isinstance(status, int) and not isinstance(status, bool)


def _reported_tokens(result: Any) -> tuple[int | None, int | None]:
    """Token counts from an SDK response or dict, when it reports them."""
    usage = getattr(result, "usage", None) or getattr(result, "usage_metadata", None)
    if usage is None and isinstance(result, dict):
        usage = result.get("usage") or result.get("usageMetadata")
    if usage is None:
        return None, None

    def get(*names: str) -> int | None:
        for n in names:
            v = usage.get(n) if isinstance(usage, dict) else getattr(usage, n, None)
            if isinstance(v, int):
                return v
        return None

    return (
        get("prompt_tokens", "input_tokens", "promptTokenCount", "prompt_token_count"),
        get("completion_tokens", "output_tokens", "candidatesTokenCount", "candidates_token_count"),
    )
