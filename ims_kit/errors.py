"""The one error hierarchy of ims_kit: every failure a user can act on is an ``ImsError``."""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    """What went wrong with a model call, as recovery needs to know it."""

    RATE_LIMIT = "RATE_LIMIT"
    TIMEOUT = "TIMEOUT"
    OVERLOAD = "OVERLOAD"
    CONTEXT_OVERFLOW = "CONTEXT_OVERFLOW"
    INVALID_REQUEST = "INVALID_REQUEST"
    AUTHENTICATION = "AUTHENTICATION"
    CONFIGURATION = "CONFIGURATION"  # the local set-up refused the call: fix it, then retry
    INVALID_OUTPUT = "INVALID_OUTPUT"  # answered, but not the JSON asked for (billed)
    CANCELLED = "CANCELLED"  # the caller left a stream early: not the model's failure
    UNKNOWN = "UNKNOWN"


def database_errors() -> tuple[type[Exception], ...]:
    """What a store raises when the file itself fails (read-only, locked past the busy
    timeout, corrupted), for ``except database_errors():`` above the stores, which never
    import sqlite3 themselves (the clause is evaluated only when an exception is raised)."""
    import sqlite3

    return (sqlite3.Error,)


class ImsError(Exception):
    """Base class of every error ims_kit raises on purpose."""


class InvalidInputError(ImsError, ValueError):
    """An argument, option or field value was not acceptable; the message says which and why."""


class CatalogError(InvalidInputError):
    """A model catalogue file (``models.json`` or a user's import file) was refused as a whole."""


class UnknownModelError(ImsError, KeyError):
    """No model with this id is registered."""

    def __init__(self, model_id: str, known: int | None = None):
        self.model_id = model_id
        hint = (
            "; `ims models --all` lists them" if known else "; run `ims init` to seed the registry"
        )
        super().__init__(f"unknown model id {model_id!r}{hint}")

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0])


class DuplicateModelError(InvalidInputError):
    """``register`` was asked to add a model id that already exists."""


class StoreError(ImsError):
    """The SQLite file could not be opened or used (not a database, unwritable, ...)."""


class MissingKeyError(ImsError):
    """A real provider was chosen but its API key is not in the environment.

    ``missing`` lists every (provider, variable) the request needed and found unset: when no
    candidate of a request had its key, the one error names them all.
    """

    def __init__(self, provider: str, variable: str, *, others: tuple[tuple[str, str], ...] = ()):
        self.provider = provider
        self.variable = variable
        self.missing = tuple(dict.fromkeys(((provider, variable), *others)))
        if len(self.missing) == 1:
            what = f"no API key for provider {provider!r}: set the environment variable {variable}"
        else:
            names = ", ".join(f"{v} ({p})" for p, v in self.missing)
            what = f"no API key for any candidate model: set one of {names}"
        super().__init__(
            what + " (or call with provider='simulated' / `--provider simulated` to work offline)"
        )

    @classmethod
    def of_all(cls, errors: list[MissingKeyError]) -> MissingKeyError:
        """One error naming every variable that ``errors`` found unset, in order."""
        first, *rest = errors
        others = tuple(pair for e in rest for pair in e.missing)
        return cls(first.provider, first.variable, others=(*first.missing[1:], *others))


class ProviderError(ImsError):
    """A model call failed: what the provider said, redacted, with what recovery needs.

    ``status`` is the HTTP status (None for transport failures, then ``transport`` says
    which: ``timeout``, ``connect`` (never reached: refused, DNS, TLS), ``read``, ``protocol``);
    ``error_type`` / ``code`` are the provider's own fields (``code`` joins every code the body
    gives); ``retry_after_s`` is the provider's wait hint in seconds, from headers or words.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        model: str | None = None,
        status: int | None = None,
        error_type: str | None = None,
        code: str | None = None,
        retry_after_s: float | None = None,
        request_id: str | None = None,
        transport: str | None = None,
        prompt_tokens: int | None = None,
        limit_tokens: int | None = None,
        output_tokens: int | None = None,
        latency_ms: float | None = None,
        endpoint: str | None = None,
        retried_by_provider: bool = False,
    ):
        self.message = message
        self.provider = provider
        self.model = model
        self.status = status
        self.error_type = error_type
        self.code = code
        self.retry_after_s = retry_after_s
        self.request_id = request_id
        self.transport = transport
        self.prompt_tokens = prompt_tokens  # of a context overflow, as the vendor counted
        self.limit_tokens = limit_tokens
        self.output_tokens = output_tokens  # the answer length it counted in, when it says
        self.latency_ms = latency_ms  # how long the failed exchange took, when known
        self.endpoint = endpoint  # the base URL the call went to (None: no endpoint)
        # True when the provider itself already retried before reporting (the gemini CLI
        # retries 429s and 5xx for minutes): recovery moves on rather than rerun it.
        self.retried_by_provider = retried_by_provider
        where = f"{provider}/{model}" if model else provider
        what = f"HTTP {status}" if status is not None else (transport or "error")
        super().__init__(f"{where}: {what}: {message}")


class InvalidOutputError(ProviderError):
    """The model answered, but not what was asked for: not JSON, or not valid against the
    schema. The answer was billed: ``text`` and the token counts say what it was."""

    def __init__(
        self,
        problem: str,
        *,
        provider: str,
        model: str,
        text: str,
        tokens_in: int | None,
        tokens_out: int | None,
        request_id: str | None = None,
        latency_ms: float | None = None,
    ):
        super().__init__(
            problem,
            provider=provider,
            model=model,
            error_type="invalid_output",
            request_id=request_id,
            latency_ms=latency_ms,
        )
        self.text = text
        self.tokens_in = tokens_in
        self.tokens_out = tokens_out


class StreamInterrupted(ImsError):
    """A streamed answer failed after its first piece: never retried silently, since the
    pieces already reached you. ``text`` is what arrived, ``error`` the failure (a
    ``ProviderError``), ``call_id`` the failed usage row that records what was spent."""

    def __init__(
        self,
        text: str,
        error: BaseException,
        *,
        model_id: str,
        request_id: str | None,
        call_id: str | None,
        attempts: list | tuple = (),
    ):
        self.text = text
        self.error = error
        self.model_id = model_id
        self.request_id = request_id
        self.call_id = call_id
        self.attempts = tuple(attempts)
        super().__init__(
            f"{model_id}: the stream failed after {len(text):,} characters: {error}"
            " (the text so far is in .text)"
        )


class BudgetExceeded(ImsError):
    """A call was refused before it was sent: its worst-case cost does not fit a budget (or the
    model is unpriced and the budget does not allow that). Names the budget, its limit and
    what is left."""

    def __init__(
        self,
        budget: str,
        *,
        limit_usd: float,
        left_usd: float,
        needed_usd: float | None,
        model_id: str,
        budget_id: int | None = None,
    ):
        self.budget = budget
        self.budget_id = budget_id
        self.limit_usd = limit_usd
        self.left_usd = left_usd
        self.needed_usd = needed_usd
        self.model_id = model_id
        if needed_usd is None:
            why = f"{model_id} is unpriced and {budget} does not allow unpriced models"
        else:
            why = (
                f"{model_id} could cost up to ${needed_usd:.6f} (its prompt and the longest"
                f" answer allowed; a smaller max_tokens reserves less) and {budget} has"
                f" ${left_usd:.6f} left"
            )
        super().__init__(f"refused before sending: {why}")


class NoModelAvailable(ImsError):
    """No registered model satisfies the request; ``excluded_by`` counts models per constraint."""

    def __init__(self, excluded_by: dict[str, int], detail: str = ""):
        self.excluded_by = dict(excluded_by)
        counts = ", ".join(f"{n} by {why}" for why, n in self.excluded_by.items())
        message = "no model satisfies the request"
        message += f": {counts}" if counts else ": the registry is empty (run `ims init`)"
        super().__init__(message + (f"; {detail}" if detail else ""))


class AllModelsFailed(ImsError):
    """Every candidate failed (or a failure that no other model can fix ended the request).

    ``attempts`` lists each try: model, error kind, HTTP status and the provider's request id.
    ``request_id`` is ims_kit's id of the request (the usage rows of its attempts carry it).
    """

    def __init__(
        self,
        attempts: list,
        reason: str = "every candidate model failed",
        request_id: str | None = None,
    ):
        self.attempts = list(attempts)
        self.request_id = request_id
        runs: list[list] = []  # consecutive attempts on one model, said once
        for a in self.attempts:
            if (
                runs
                and runs[-1][0].model_id == a.model_id
                and runs[-1][0].error_kind == (a.error_kind)
            ):
                runs[-1].append(a)
            else:
                runs.append([a])
        tried = "; ".join(
            f"{run[-1].model_id}: {run[-1].error_kind or 'ok'}"
            + (f" x{len(run)}" if len(run) > 1 else "")
            + (f" (HTTP {run[-1].status})" if run[-1].status else "")
            + (f" [{run[-1].vendor_request_id}]" if run[-1].vendor_request_id else "")
            + (f" - {run[-1].error}" if getattr(run[-1], "error", "") else "")
            for run in runs
        )
        super().__init__(f"{reason}: {tried}" if tried else reason)


class WorkflowError(ImsError):
    """A workflow could not be restored, saved or driven (bad dict, stale copy, ...)."""


class UnknownWorkflowError(WorkflowError, KeyError):
    """No workflow with this id is in the database."""

    def __init__(self, workflow_id: str):
        self.workflow_id = workflow_id
        super().__init__(f"unknown workflow id {workflow_id!r}; `ims workflows` lists them")

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0])


class InvalidTransition(WorkflowError):
    """An event the workflow's current state does not allow; nothing was changed."""

    def __init__(
        self, workflow_id: str, state: str, event: str, allowed: list[str], detail: str = ""
    ):
        self.workflow_id = workflow_id
        self.state = state
        self.event = event
        self.allowed = list(allowed)
        options = ", ".join(self.allowed) if self.allowed else "none (a final state)"
        why = f" ({detail})" if detail else ""
        super().__init__(
            f"workflow {workflow_id}: {event} is not allowed in state {state}{why};"
            f" allowed events: {options}"
        )
