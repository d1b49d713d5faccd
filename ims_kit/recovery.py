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
import dataclasses
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import stamina

from ims_kit import tokens
from ims_kit.budgets import worst_case_usd
from ims_kit.classify import ENDPOINT, REQUEST, RULES, Classification, classify, rules_table
from ims_kit.errors import (
    AllModelsFailed,
    BudgetExceeded,
    ErrorKind,
    InvalidOutputError,
    MissingKeyError,
    ProviderError,
    StreamInterrupted,
)
from ims_kit.prompts import Message, Prompt, without_options
from ims_kit.records import Answer, Attempt, Completion, ModelSpec
from ims_kit.recovery_policy import RecoveryPolicy, RequestState, decide
from ims_kit.telemetry import OFF

if TYPE_CHECKING:
    from ims_kit.budgets import Budgets
    from ims_kit.circuits import CircuitBreaker, Permit
    from ims_kit.events import EventLog
    from ims_kit.usage import UsageTracker

__all__ = ["RULES", "Recovery", "RecoveryPolicy", "classify", "is_call_failure", "rules_table"]

K = ErrorKind
log = logging.getLogger(__name__)


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


CallFn = Callable[[ModelSpec, Prompt], Completion]
AsyncCallFn = Callable[[ModelSpec, Prompt], Awaitable[Completion]]
# a streamed call: text pieces, then the Completion
StreamFn = Callable[[ModelSpec, Prompt], Iterator[Any]]
AsyncStreamFn = Callable[[ModelSpec, Prompt], AsyncIterator[Any]]


@dataclass
class _Opened:
    """A stream whose first piece arrived: from here on it is never retried."""

    permits: list[Permit]
    pieces: Any  # the provider's (async) iterator
    first: Any  # its first item: a text piece, or the Completion of an empty answer
    started: float
    ttft_ms: float
    parts: list[str] = field(default_factory=list)


def _pinned(method):
    """Run a recovery step with the state version read once for all its checks."""

    @functools.wraps(method)
    def step(self, *args: Any, **kwargs: Any) -> Any:
        token = self.generation.pin()
        try:
            return method(self, *args, **kwargs)
        finally:
            self.generation.unpin(token)

    return step


class Recovery:
    """Runs a call over a chain of candidate models with retries, shrinking and breakers.

    Every driver takes the candidates, the call and the ``Prompt``, and as keywords the
    request's context: ``strategy``, ``workflow_id``, ``provider`` (overrides the rows'),
    ``endpoint_of(spec)`` (where a candidate's calls go, so that a refused connection rules
    out the endpoint's other models), ``refused_options(spec, prompt)`` (options a model does
    not take, dropped before sending) and ``check(text)`` (the parsed answer and the problem
    with it, for JSON output).
    """

    def __init__(
        self,
        breaker: CircuitBreaker,
        usage: UsageTracker,
        events: EventLog,
        policy: RecoveryPolicy | None = None,
        budgets: Budgets | None = None,
    ):
        self.breaker = breaker
        self.usage = usage
        self.events = events
        self.policy = policy or RecoveryPolicy()
        self.budgets = budgets  # reserved before, settled by each attempt's usage row
        # each step of an attempt reads the state version once (breakers, budgets cached)
        self.generation = breaker.generation
        self.telemetry: Any = OFF  # ims_kit.telemetry: spans and metrics, when switched on
        # model id, prompt, fallbacks or None -> the models to try (set by Kit)
        self.chain_for: Callable[[str, str, list[str] | None], list[ModelSpec]] | None = None
        _quiet_stamina()

    def get_circuit_status(self) -> dict[str, dict[str, Any]]:
        """Every breaker with history: state, failures, opened_at, retry_at, ..."""
        return self.breaker.status()

    # sync driver
    def run(
        self, candidates: list[ModelSpec], call: CallFn, prompt: Prompt, **context: Any
    ) -> Answer:
        """Call the first candidate that works; raise AllModelsFailed when none does."""
        state = RequestState(prompt, candidates=list(candidates), **context)
        with self.telemetry.request(state, stream=False):
            for spec in self._entered(candidates, state):
                try:
                    return self._retried(lambda: self._try(spec, state, call))  # noqa: B023
                except _Failed as failed:
                    self._after_model(spec, state, failed)
            raise state.give_up()

    # async driver: the same steps, awaited
    async def run_async(
        self, candidates: list[ModelSpec], call: AsyncCallFn, prompt: Prompt, **context: Any
    ) -> Answer:
        """``run`` for async code: awaits ``call`` and sleeps without blocking the loop."""
        state = RequestState(prompt, candidates=list(candidates), deferred=True, **context)
        with self.telemetry.request(state, stream=False):
            for spec in self._entered(candidates, state):
                try:
                    return await self._aretried(lambda: self._atry(spec, state, call))  # noqa: B023
                except _Failed as failed:
                    self._after_model(spec, state, failed)
            raise state.give_up()

    # stream drivers: recovered until the first piece, relayed as they come after it
    def run_stream(
        self, candidates: list[ModelSpec], open_stream: StreamFn, prompt: Prompt, **context: Any
    ) -> Iterator[Any]:
        """The text pieces of the first candidate whose stream starts, then its ``Answer``.

        A failure before the first piece is recovered like any call; one after it raises
        ``StreamInterrupted`` with the text so far (its usage row records what was spent).
        Closing this generator early closes the provider's stream and logs the partial call.
        """
        state = RequestState(prompt, candidates=list(candidates), stream=True, **context)
        with self.telemetry.request(state, stream=True):
            for spec in self._entered(candidates, state):
                try:
                    opened = self._retried(lambda: self._open(spec, state, open_stream))  # noqa: B023
                except _Failed as failed:
                    self._after_model(spec, state, failed)
                    continue
                item = opened.first
                try:
                    while not isinstance(item, Completion):
                        opened.parts.append(item)
                        yield item
                        item = next(opened.pieces)
                    item = _timed(item, opened)
                    data = self._checked(spec, state, item)
                except Exception as exc:
                    opened.pieces.close()
                    raise self._interrupted(spec, state, opened, exc) from exc
                except BaseException:  # closed early (GeneratorExit), Ctrl-C
                    opened.pieces.close()
                    self._cancelled(spec, state, opened)
                    raise
                yield self._success(spec, state, opened.permits, item, data)
                return
            raise state.give_up()

    async def run_astream(
        self,
        candidates: list[ModelSpec],
        open_stream: AsyncStreamFn,
        prompt: Prompt,
        **context: Any,
    ) -> AsyncIterator[Any]:
        """``run_stream`` for async code."""
        state = RequestState(
            prompt, candidates=list(candidates), stream=True, deferred=True, **context
        )
        with self.telemetry.request(state, stream=True):
            for spec in self._entered(candidates, state):
                try:
                    opened = await self._aretried(
                        lambda: self._aopen(spec, state, open_stream)  # noqa: B023
                    )
                except _Failed as failed:
                    self._after_model(spec, state, failed)
                    continue
                item = opened.first
                try:
                    while not isinstance(item, Completion):
                        opened.parts.append(item)
                        yield item
                        item = await anext(opened.pieces)
                    item = _timed(item, opened)
                    data = self._checked(spec, state, item)
                except Exception as exc:
                    await opened.pieces.aclose()
                    error = self._interrupted(spec, state, opened, exc)
                    await self._flush(state)
                    raise error from exc
                except BaseException:  # closed early (GeneratorExit), cancelled
                    await opened.pieces.aclose()
                    self._cancelled(spec, state, opened)
                    await self._flush(state)
                    raise
                answer = self._success(spec, state, opened.permits, item, data)
                await self._flush(state)
                yield answer
                return
            raise state.give_up()

    def _entered(self, candidates: list[ModelSpec], state: RequestState) -> Iterator[ModelSpec]:
        """The candidates in order, each once recovery lets the request try it (``_enter``)."""
        for index, spec in enumerate(candidates):
            state.index = index
            if self._enter(spec, state):
                yield spec

    def _try(self, spec: ModelSpec, state: RequestState, call: CallFn) -> Answer:
        """One attempt: the Answer, or _Failed saying what recovery decided."""
        permits, sent = self._admit(spec, state)
        started = time.perf_counter()
        try:
            completion = call(spec, sent)
            data = self._checked(spec, state, completion)
        except Exception as exc:
            self._failure(spec, state, permits, exc, started)
        except BaseException:  # Ctrl-C: no verdict on the model
            self._abandon(spec, state, permits, started)
            raise
        return self._success(spec, state, permits, completion, data)

    async def _atry(self, spec: ModelSpec, state: RequestState, call: AsyncCallFn) -> Answer:
        """``_try`` for async code; its row is committed by the writer thread, awaited."""
        permits, sent = self._admit(spec, state)
        started = time.perf_counter()
        try:
            completion = await call(spec, sent)
            data = self._checked(spec, state, completion)
        except Exception as exc:
            self._failure(spec, state, permits, exc, started)
        except BaseException:  # cancelled: no verdict on the model
            self._abandon(spec, state, permits, started)
            raise
        finally:
            await self._flush(state)
        answer = self._success(spec, state, permits, completion, data)
        await self._flush(state)
        return answer

    def _retried(self, attempt: Callable[[], Any]) -> Any:
        """``attempt()``, retried as its _Failed says. The first try runs without stamina (most
        calls need no retry); a retryable first failure is replayed into stamina's loop so
        that its wait, backoff and bounds apply exactly as if stamina had run it."""
        try:
            return attempt()
        except _Failed as failed:
            if failed.wait_s is None:
                raise
            first: _Failed | None = failed
        for retry in self._retrying():
            with retry:
                if first is not None:
                    replay, first = first, None
                    raise replay
                return attempt()
        raise AssertionError("stamina ends with a return or an exception")  # pragma: no cover

    async def _aretried(self, attempt: Callable[[], Awaitable[Any]]) -> Any:
        """``_retried`` for async code (stamina's waits do not block the loop)."""
        try:
            return await attempt()
        except _Failed as failed:
            if failed.wait_s is None:
                raise
            first: _Failed | None = failed
        async for retry in self._retrying():
            with retry:
                if first is not None:
                    replay, first = first, None
                    raise replay
                return await attempt()
        raise AssertionError("stamina ends with a return or an exception")  # pragma: no cover

    def _open(self, spec: ModelSpec, state: RequestState, open_stream: StreamFn) -> _Opened:
        """Start the stream and wait for its first item; a failure is an attempt's failure."""
        permits, sent = self._admit(spec, state)
        started = time.perf_counter()
        pieces = open_stream(spec, sent)
        try:
            first = next(pieces)
        except Exception as exc:
            pieces.close()
            self._failure(spec, state, permits, exc, started)
        except BaseException:
            pieces.close()
            self._abandon(spec, state, permits, started)
            raise
        return _Opened(permits, pieces, first, started, _since(started))

    async def _aopen(
        self, spec: ModelSpec, state: RequestState, open_stream: AsyncStreamFn
    ) -> _Opened:
        permits, sent = self._admit(spec, state)
        started = time.perf_counter()
        pieces = open_stream(spec, sent)
        try:
            first = await anext(pieces)
        except Exception as exc:
            await pieces.aclose()
            self._failure(spec, state, permits, exc, started)
        except BaseException:
            await pieces.aclose()
            self._abandon(spec, state, permits, started)
            raise
        finally:
            await self._flush(state)
        return _Opened(permits, pieces, first, started, _since(started))

    async def _flush(self, state: RequestState) -> None:
        """Wait, without blocking the loop, until the attempt rows this request handed to the
        writer are committed (nothing is acknowledged before), then tell subscribers."""
        while state.pending:
            future = state.pending.pop(0)
            await asyncio.wrap_future(future)
            self.usage.notify_committed(future)

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
        await self.run_async(chain, call, one_turn, strategy=None, workflow_id=workflow_id)
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

    @_pinned
    def _enter(self, spec: ModelSpec, state: RequestState) -> bool:
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

    def _permits(self, spec: ModelSpec, state: RequestState) -> list[Permit]:
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

    def _sendable(self, spec: ModelSpec, state: RequestState) -> Prompt:
        """What this attempt sends: the current prompt less the options the model refuses."""
        current = state.current or state.prompt
        sent, state.dropped = without_options(current, state.refused_options(spec, current))
        for name, why in state.dropped.items():
            log.info("%s: %s not sent: %s", spec.model_id, name, why)
        return sent

    def _checked(self, spec: ModelSpec, state: RequestState, c: Completion) -> Any:
        """The answer parsed by the request's check (JSON output), else None; an answer that
        fails it is an InvalidOutputError, billed like any answer."""
        if state.check is None:
            return None
        data, problem = state.check(c.text)
        if problem is None:
            return data
        raise InvalidOutputError(
            problem,
            provider=state.provider or spec.provider,
            model=spec.model_id,
            text=c.text,
            tokens_in=c.tokens_in,
            tokens_out=c.tokens_out,
            request_id=c.request_id,
            latency_ms=c.latency_ms,
        )

    @_pinned
    def _success(
        self,
        spec: ModelSpec,
        state: RequestState,
        permits: list[Permit],
        c: Completion,
        data: Any = None,
    ) -> Answer:
        sent = state.current or state.prompt
        for permit in permits:
            self.breaker.record_success(permit)
        tin, tout, source = _spent(spec, sent, c.text, c.tokens_in, c.tokens_out)
        record = self._log(
            spec, state, tin, tout, source, c.latency_ms, True, None, c.text, c.ttft_ms,
            completion=c, action="done",
        )  # fmt: skip
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
            data=data,
            ttft_ms=c.ttft_ms,
            dropped_options=dict(state.dropped),
        )

    @_pinned
    def _failure(
        self,
        spec: ModelSpec,
        state: RequestState,
        permits: list[Permit],
        exc: Exception,
        started: float,
    ) -> None:
        """Record a failed attempt and raise _Failed saying whether to retry and after what."""
        latency = _since(started)
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
        cls, err = self._verdict(permits, exc)
        if err.latency_ms is not None:
            latency = err.latency_ms  # e.g. a simulated timeout's simulated duration
        sent = state.current or state.prompt
        wait, action, detail, next_prompt = decide(
            self.policy,
            spec,
            state,
            cls,
            err,
            breaker_open=self.breaker.is_open(spec.model_id, simulated=state.simulated(spec)),
        )
        if isinstance(err, InvalidOutputError):  # answered and billed, but not usable
            tin, tout, source = _spent(spec, sent, err.text, err.tokens_in, err.tokens_out)
            self._log(spec, state, tin, tout, source, latency, False, cls.kind, err.text,
                      error=err, action=action)  # fmt: skip
        else:
            # A failed request is not billed: the row counts no tokens, so costs $0 (not NULL).
            self._log(spec, state, 0, 0, "estimate", latency, False, cls.kind, error=err,
                      action=action)  # fmt: skip
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
        if wait and wait > 0 and self.policy.wait_for is not None:
            self.policy.wait_for(wait)  # simulated time: the wait passes without sleeping
            wait = 0.0
        raise _Failed(attempt, cls, wait, exc) from exc

    @_pinned
    def _admit(self, spec: ModelSpec, state: RequestState) -> tuple[list[Permit], Prompt]:
        """The breakers' permits, what to send, and its budget reservation; _Failed when a
        breaker is open or a budget cannot take the call (it is then never sent)."""
        permits = self._permits(spec, state)
        sent = self._sendable(spec, state)
        if self.budgets is None or not self.budgets.active():
            return permits, sent
        worst = worst_case_usd(
            spec, tokens.count_prompt(sent, spec.model_id), sent.options.max_tokens
        )
        try:
            state.reservation = self.budgets.reserve(spec, worst, simulated=state.simulated(spec))
        except BudgetExceeded as exc:
            for permit in permits:
                self.breaker.release(permit)
            attempt = Attempt(spec.model_id, "BUDGET", action="fallback", detail=str(exc))
            state.attempts.append(attempt)
            state.refusals.append(exc)
            raise _Failed(attempt, None, None, exc) from exc
        return permits, sent

    def _abandon(
        self, spec: ModelSpec, state: RequestState, permits: list[Permit], started: float
    ) -> None:
        """A call interrupted before its verdict (Ctrl-C, a cancelled task): a probe counts as
        failed and frees its slot; the request may have reached the vendor, so it is logged
        (CANCELLED, the prompt's tokens estimated) and its reservation settled."""
        for permit in permits:
            if permit.probe:
                self.breaker.cancelled(permit)
        sent = state.current or state.prompt
        tin = tokens.count_prompt(sent, spec.model_id)
        self._log(spec, state, tin, 0, "estimate", _since(started), False, K.CANCELLED,
                  action="cancelled")  # fmt: skip

    def _verdict(
        self, permits: list[Permit], exc: BaseException
    ) -> tuple[Classification, ProviderError]:
        """Classify a failure and tell the breakers: the endpoint's when it was unreachable,
        else the model's (and the endpoint, which answered, is reachable)."""
        cls = classify(exc)
        err = exc if isinstance(exc, ProviderError) else _as_error(exc)
        model_permit, *endpoint_permits = permits
        if cls.scope == ENDPOINT:
            self.breaker.release(model_permit)
            for permit in endpoint_permits:
                self.breaker.record_failure(permit, cls.kind, counted=cls.counted)
        else:
            self.breaker.record_failure(model_permit, cls.kind, counted=cls.counted)
            for permit in endpoint_permits:
                self.breaker.record_success(permit)
        return cls, err

    @_pinned
    def _interrupted(
        self, spec: ModelSpec, state: RequestState, opened: _Opened, exc: Exception
    ) -> Exception:
        """A stream that failed after its first piece: counted, logged with what was spent,
        and raised as StreamInterrupted (never retried: the pieces reached the caller)."""
        if not is_call_failure(exc):
            for permit in opened.permits:
                self.breaker.release(permit)
            return exc
        cls, err = self._verdict(opened.permits, exc)
        text = err.text if isinstance(err, InvalidOutputError) else "".join(opened.parts)
        known = (err.tokens_in, err.tokens_out) if isinstance(err, InvalidOutputError) else ()
        sent = state.current or state.prompt
        tin, tout, source = _spent(spec, sent, text, *(known or (None, None)))
        latency = err.latency_ms if err.latency_ms is not None else _since(opened.started)
        record = self._log(
            spec, state, tin, tout, source, latency, False, cls.kind, text, opened.ttft_ms,
            error=err, action="fail",
        )  # fmt: skip
        state.attempts.append(
            Attempt(
                spec.model_id,
                cls.kind.value,
                err.status,
                err.request_id,
                latency,
                "fail",
                "the stream failed after its first piece: not retried",
                err.message[:160],
            )
        )
        self.events.emit(
            "recovery.stream_interrupted",
            spec.model_id,
            error_kind=cls.kind.value,
            chars=len(text),
            request_id=state.request_id,
            workflow_id=state.workflow_id,
        )
        log.info("%s: stream interrupted after %d characters: %s", spec.model_id, len(text), err)
        return StreamInterrupted(
            text,
            err,
            model_id=spec.model_id,
            request_id=state.request_id,
            call_id=record.call_id,
            attempts=state.attempts,
        )

    @_pinned
    def _cancelled(self, spec: ModelSpec, state: RequestState, opened: _Opened) -> None:
        """The caller left the stream early: the model was answering (its breaker hears a
        success); the partial call is logged (CANCELLED) with an estimate of what it spent."""
        for permit in opened.permits:
            self.breaker.record_success(permit)
        text = "".join(opened.parts)
        tin, tout, _ = _spent(spec, state.current or state.prompt, text, None, None)
        self._log(
            spec,
            state,
            tin,
            tout,
            "estimate",
            _since(opened.started),
            False,
            K.CANCELLED,
            text,
            opened.ttft_ms,
            action="cancelled",
        )
        log.info("%s: stream closed by the caller after %d characters", spec.model_id, len(text))

    @_pinned
    def _after_model(self, spec: ModelSpec, state: RequestState, failed: _Failed) -> None:
        """Leave this model: fail the request, or note what the next candidates must satisfy."""
        cls = failed.cls
        if cls is not None and cls.scope == REQUEST and cls.kind is not K.CONTEXT_OVERFLOW:
            raise AllModelsFailed(
                state.attempts, f"the {_what(cls)} was refused", request_id=state.request_id
            ) from failed.error
        if failed.attempt.action == "fail":
            raise AllModelsFailed(
                state.attempts, failed.attempt.detail or "failed", request_id=state.request_id
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
        state: RequestState,
        tin: int,
        tout: int,
        source: str,
        latency_ms: float,
        success: bool,
        kind: ErrorKind | None,
        response: str | None = None,
        ttft_ms: float | None = None,
        *,
        completion: Completion | None = None,
        error: ProviderError | None = None,
        action: str | None = None,
    ):
        """Write the attempt's usage row (settling its reservation) and, with telemetry on,
        its span and metrics."""
        fallback_from = state.first_model if state.first_model != spec.model_id else None
        state.logged += 1
        reservation, state.reservation = state.reservation, None
        sent = state.current or state.prompt  # what this attempt was sent
        texts = self.usage.store_text  # joined only where kept: a long conversation costs
        logged = self.usage.log_execution(
            wait=not state.deferred,
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
            prompt=sent.text if texts else None,
            response=response,
            routed_prompt=sent.last_user if texts else None,
            ttft_ms=ttft_ms,
            reservation_id=reservation.id if reservation is not None else None,
        )
        record = logged
        if state.deferred:
            record, future = logged  # async code awaits the commit in _flush
            state.pending.append(future)
        if self.telemetry.enabled:
            breaker = self.breaker.get(spec.model_id, simulated=state.simulated(spec))
            self.telemetry.attempt(
                spec, state, record, sent=sent,
                completion=completion, error=error, action=action,
                breaker=breaker["state"] if breaker else "closed",
                endpoint=state.endpoint_of(spec), stream=state.stream,
            )  # fmt: skip
        return record


def _since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _timed(c: Completion, opened: _Opened) -> Completion:
    """A streamed Completion with its time to first token and its whole duration as the
    caller saw them (from the start of the attempt), unless the provider said its own (the
    simulator's simulated times)."""
    if c.ttft_ms is not None:
        return c
    return dataclasses.replace(c, latency_ms=_since(opened.started), ttft_ms=opened.ttft_ms)


def _spent(
    spec: ModelSpec, sent: Prompt, text: str, tokens_in: int | None, tokens_out: int | None
) -> tuple[int, int, str]:
    """Token counts of an attempt: the provider's, else estimated (and said to be)."""
    if tokens_in is not None and tokens_out is not None:
        return tokens_in, tokens_out, "provider"
    tin = tokens_in if tokens_in is not None else tokens.count_prompt(sent, spec.model_id)
    tout = tokens_out if tokens_out is not None else tokens.count(text, spec.model_id).tokens
    return tin, tout, "estimate"


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
