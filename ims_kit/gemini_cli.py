"""``ims gemini``: Google's gemini CLI on the Gemini model ims_kit selects, logged, with fallback.

One request: check health (the database, a seeded registry, an active Gemini model whose
circuit is not open, the executable), rank the active Google models for the prompt
(``IMS_STRATEGY``, ``IMS_MIN_CONTEXT``), then run ``gemini -m <api_model> -p <prompt> -o json
[passthrough...]`` on each in turn until one answers. Every run is a usage row (provider
``gemini_cli``; tokens from the CLI's ``stats``, else estimated) and tells the model's breaker
how it went. ims never switches model silently: each switch is announced.

Running the CLI and reading what it prints (with the table that maps its exit codes and JSON
errors to the kinds recovery uses) is the adapter ``ims_kit.providers.gemini_cli``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ims_kit.errors import ErrorKind, ImsError, StoreError
from ims_kit.providers.gemini_cli import (
    PROVIDER,
    GeminiCliError,
    GeminiCliNotFound,
    Reply,
    Run,
    build_argv,
    execute,
    find_executable,
    read_result,
)
from ims_kit.records import Answer, Attempt, ModelSpec

if TYPE_CHECKING:
    from ims_kit.kit import Kit

__all__ = [
    "GeminiCliFailed",
    "GeminiCliNotFound",
    "GeminiUnavailable",
    "ask",
    "check_health",
    "open_kit",
]

VENDOR = "Google"


class GeminiUnavailable(ImsError):
    """``ims gemini`` cannot start: no database, no seeded registry or no callable Gemini model."""


class GeminiCliFailed(ImsError):
    """No Gemini model answered; ``ims gemini`` exits with ``exit_code``, the last run's."""

    def __init__(self, reason: str, attempts: list[Attempt], exit_code: int):
        self.attempts = list(attempts)
        self.exit_code = exit_code
        tried = "; ".join(f"{a.model_id}: {a.error_kind} ({a.detail})" for a in self.attempts)
        super().__init__(f"{reason} (exit {exit_code})" + (f": {tried}" if tried else ""))


def open_kit() -> Kit:
    """The Kit on the existing database; a missing file is reported, never created."""
    from ims_kit.kit import Kit

    try:
        return Kit(create=False)
    except StoreError as exc:
        raise GeminiUnavailable(str(exc)) from None


def check_health(kit: Kit) -> str:
    """Raise what stops ``ims gemini`` from working; return the executable's path."""
    models = kit.registry.snapshot()
    if not models:
        raise GeminiUnavailable(f"the registry at {kit.path} is empty: run `ims init`")
    gemini = [m for m in models if m.vendor == VENDOR and m.active]
    if not gemini:
        raise GeminiUnavailable(
            "no active Google model is registered: `ims models --vendor Google --all` lists them"
        )
    blocked = kit.circuits.unavailable()
    if all(m.model_id in blocked for m in gemini):
        until = min(blocked[m.model_id] for m in gemini)
        raise GeminiUnavailable(
            f"every active Gemini model's circuit is open (the first retries at {until});"
            " `ims status` shows them"
        )
    return find_executable()


def ask(
    kit: Kit,
    prompt: str,
    *,
    passthrough: Sequence[str] = (),
    fallback: bool = True,
    stdin: str | None = None,
    notify: Callable[[str], None] | None = None,
) -> Answer:
    """Answer ``prompt`` with the best Gemini model that works; ``notify`` hears every switch.

    ``stdin`` is given to every run (the gemini CLI reads it as context). Raises
    GeminiCliFailed, with the last run's exit code, when no model answers.
    """
    say = notify or (lambda message: None)
    executable = check_health(kit)
    rec = kit.recommend(f"{stdin}\n{prompt}" if stdin else prompt, vendors=[VENDOR])
    for c in rec.excluded:
        if c.excluded_by == "circuit open":
            say(f"skipped {c.model_id}: {c.reasons[0]}")
    chain = [c.model for c in rec.ranked][: None if fallback else 1]
    req = _Request(kit, prompt, rec.strategy)
    switch: tuple[str, str, str] | None = None  # (model, kind, why) of the last failure
    last_exit, larger_than = 1, 0
    for spec in chain:
        if spec.context_window <= larger_than:
            continue  # a prompt too long for one window needs a larger one
        argv = build_argv(executable, spec.api_model, prompt, passthrough)
        permit = kit.circuits.allow(spec.model_id)
        if permit is None:  # opened since the ranking, by another process
            say(f"skipped {spec.model_id}: circuit open")
            req.attempts.append(Attempt(spec.model_id, "CIRCUIT_OPEN", action="fallback"))
            continue
        if switch is not None:
            say(f"switched from {switch[0]} to {spec.model_id}: {switch[1]} ({switch[2]})")
        req.first = req.first or spec.model_id
        try:
            run = execute(argv, stdin=stdin)
        except BaseException:  # Ctrl-C, or the executable vanished: no verdict on the model
            kit.circuits.release(permit)
            raise
        try:
            reply = read_result(run, spec.api_model)
        except GeminiCliError as err:
            kind, detail = req.failed(spec, permit, run, err)
            last_exit = err.exit_code
            if kind is ErrorKind.CONTEXT_OVERFLOW:
                larger_than = spec.context_window
            switch = (spec.model_id, kind.value, detail)
            continue
        kit.circuits.record_success(permit)
        return _answer(req, spec, run, reply, say)
    reason = "no Gemini model answered" if fallback else "--no-fallback: no other model tried"
    raise GeminiCliFailed(reason, req.attempts, last_exit)


# -- steps of ``ask`` ------------------------------------------------------------------------
@dataclass
class _Request:
    """One ``ask``: what every attempt's usage row shares."""

    kit: Kit
    prompt: str
    strategy: str
    first: str | None = None
    attempts: list[Attempt] = field(default_factory=list)

    def log(self, spec, run, tokens_in, tokens_out, source, kind=None, response=None):
        return self.kit.usage.log_execution(
            model_id=spec.model_id,
            vendor_id=spec.vendor,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost_per_mil_in=spec.cost_per_mil_in,
            cost_per_mil_out=spec.cost_per_mil_out,
            latency_ms=run.latency_ms,
            success=kind is None,
            error_kind=kind,
            provider=PROVIDER,
            token_source=source,
            attempt=len(self.attempts) + 1,
            fallback_from=self.first if self.first != spec.model_id else None,
            strategy=self.strategy,
            prompt=self.prompt,
            response=response,
        )

    def failed(self, spec, permit, run: Run, err: GeminiCliError) -> tuple[ErrorKind, str]:
        """Classify, tell the breaker, log; raise GeminiCliFailed when no model would do."""
        from ims_kit.recovery import classify

        kind = classify(err).kind
        self.kit.circuits.record_failure(permit, kind)
        self.log(spec, run, 0, 0, "estimate", kind)  # a refused run is not billed
        detail = err.message[:160]
        stop = _stop_reason(kind, err.status)
        action = "fail" if stop else "fallback"
        self.attempts.append(
            Attempt(spec.model_id, kind.value, err.status, None, run.latency_ms, action, detail)
        )
        if stop is not None:
            raise GeminiCliFailed(stop, self.attempts, err.exit_code) from None
        self.kit.events.emit(
            "recovery.fallback", spec.model_id, error_kind=kind.value, detail=detail, via=PROVIDER
        )
        return kind, detail


def _stop_reason(kind: ErrorKind, status: int | None) -> str | None:
    """Why no other model is tried after this failure, or None to fall back."""
    if kind is ErrorKind.AUTHENTICATION:
        return "the gemini CLI's credentials were refused, and they serve every Gemini model"
    if kind is ErrorKind.INVALID_REQUEST and status != 404:  # 404: this model is unknown
        return "the request or the CLI's set-up was refused: another model would fail too"
    return None


def _answer(req: _Request, spec: ModelSpec, run: Run, reply: Reply, say) -> Answer:
    """Log the successful attempt and build the answer (tokens from stats, else estimated)."""
    tin, tout, source = reply.tokens_in, reply.tokens_out, "provider"
    if tin is None or tout is None:
        tin, tout, source = _count(req.prompt, spec), _count(reply.text, spec), "estimate"
    others = [m for m in reply.models if m != spec.api_model]
    if others and spec.api_model not in reply.models:
        say(f"the gemini CLI reports {', '.join(others)}, not {spec.api_model}, for this answer")
    record = req.log(spec, run, tin, tout, source, response=reply.text)
    req.attempts.append(Attempt(spec.model_id, None, latency_ms=run.latency_ms))
    return Answer(
        text=reply.text,
        model_id=spec.model_id,
        vendor=spec.vendor,
        provider="gemini_cli",
        tokens_in=tin,
        tokens_out=tout,
        token_source=source,
        cost_usd=record.cost_usd,
        latency_ms=run.latency_ms,
        call_id=record.call_id,
        attempts=tuple(req.attempts),
    )


def _count(text: str, spec: ModelSpec) -> int:
    from ims_kit import tokens

    return tokens.count(text, spec.model_id).tokens
