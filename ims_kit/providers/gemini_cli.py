"""The gemini CLI as a provider: find it, run it once, read its JSON or classify its failure.

Like the HTTP adapters it never retries, logs or reads the registry: ``ims_kit.gemini_cli``
does that. A failed run becomes a ``ProviderError`` with the HTTP status the same failure has
on the API, so that ``recovery.classify`` sorts it like any provider's ("then" below is what
``ims gemini`` does next). Sources: the exit codes of gemini-cli's ``FatalError`` classes
(``packages/core/src/utils/errors.ts``; its headless reference ``docs/cli/headless.md``
documents 0, 1, 42 and 53) and the ``{"error": {"type", "message", "code"}}`` it prints on
stderr in JSON mode (``packages/cli/src/utils/errors.ts``), whose ``type`` names the error
class (``packages/core/src/utils/googleQuotaErrors.ts``)::

    exit  gemini-cli error                              status   kind              then
    41    FatalAuthenticationError                      401      AUTHENTICATION    stop (a)
    42    FatalInputError                               400      INVALID_REQUEST   stop
    44    FatalSandboxError, 52 FatalConfigError,       400      INVALID_REQUEST   stop (b)
    53    FatalTurnLimitedError, 54 FatalToolExecution
    130   FatalCancellationError                        499      INVALID_REQUEST   stop
    1     TerminalQuotaError, RetryableQuotaError       429      RATE_LIMIT        next (c)
    1     UnauthorizedError, ForbiddenError             401/403  AUTHENTICATION    stop (a)
    1     ModelNotFoundError                            404      INVALID_REQUEST   next
    1     anything else: the JSON code if an HTTP status, else the message's words  next

(a) the CLI's credentials serve every Gemini model; (b) the local set-up (sandbox, settings,
``maxSessionTurns``, a tool) fails on any model and is not the model's fault, so breakers do
not count it; (c) the CLI has already retried, and Gemini quotas are per model.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ims_kit.errors import ImsError, InvalidInputError, ProviderError

PROVIDER = "gemini_cli"
INSTALL_HINT = "npm install -g @google/gemini-cli"
RESERVED_FLAGS = ("-m", "--model", "-p", "--prompt", "-o", "--output-format")
MAX_MESSAGE_CHARS = 300

# gemini-cli error class -> (its exit code, the HTTP status of the same failure on the API)
_FATAL = {
    "FatalAuthenticationError": (41, 401),
    "FatalInputError": (42, 400),
    "FatalSandboxError": (44, 400),
    "FatalConfigError": (52, 400),
    "FatalTurnLimitedError": (53, 400),
    "FatalToolExecutionError": (54, 400),
    "FatalCancellationError": (130, 499),
}
_BY_EXIT = {code: (name, status) for name, (code, status) in _FATAL.items()}
_STATUS_BY_TYPE = {
    "TerminalQuotaError": 429,
    "RetryableQuotaError": 429,
    "UnauthorizedError": 401,
    "ForbiddenError": 403,
    "ValidationRequiredError": 403,
    "BadRequestError": 400,
    "ModelNotFoundError": 404,
}
_TRANSPORT = {
    "ETIMEDOUT": "timeout",
    "ESOCKETTIMEDOUT": "timeout",
    "ECONNREFUSED": "connect",
    "ECONNRESET": "read",
    "ENOTFOUND": "connect",
    "EAI_AGAIN": "connect",
}
_OBJECT_START = re.compile(r"^\{", re.M)


class GeminiCliNotFound(ImsError):
    """The gemini executable is not installed (or ``IMS_GEMINI_BIN`` names no executable)."""

    def __init__(self, detail: str):
        super().__init__(f"{detail}: install it with `{INSTALL_HINT}` (or set IMS_GEMINI_BIN)")


class GeminiCliError(ProviderError):
    """One failed run of the gemini CLI; ``exit_code`` is the process's own."""

    def __init__(self, message: str, *, exit_code: int, **fields: Any):
        self.exit_code = exit_code
        super().__init__(message, provider=PROVIDER, **fields)


@dataclass(frozen=True)
class Run:
    """One finished process: its exit code, what it printed and how long it took."""

    argv: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str
    latency_ms: float


@dataclass(frozen=True)
class Reply:
    """A successful run's answer and the token counts its ``stats`` reported (None if none)."""

    text: str
    tokens_in: int | None
    tokens_out: int | None
    models: tuple[str, ...]  # the models the CLI's stats name: who actually answered


def find_executable() -> str:
    """The gemini executable: ``IMS_GEMINI_BIN`` if set, else ``gemini`` on PATH."""
    override = os.environ.get("IMS_GEMINI_BIN", "").strip()
    if override:
        found = shutil.which(override)
        if found is None:
            raise GeminiCliNotFound(f"IMS_GEMINI_BIN={override!r} is not an executable")
        return found
    found = shutil.which("gemini")
    if found is None:
        raise GeminiCliNotFound("the gemini CLI is not installed (no `gemini` on PATH)")
    return found


def build_argv(
    executable: str, api_model: str, prompt: str, passthrough: Sequence[str] = ()
) -> list[str]:
    """``gemini -m MODEL -p PROMPT -o json`` and the user's own arguments, unchanged."""
    clash = [a for a in passthrough if a.split("=", 1)[0] in RESERVED_FLAGS]
    if clash:
        raise InvalidInputError(
            f"{clash[0]} is set by ims gemini (the model is selected, the output read as JSON);"
            " `ims ask --model` calls one model by name"
        )
    return [executable, "-m", api_model, "-p", prompt, "-o", "json", *passthrough]


def execute(argv: Sequence[str], *, stdin: str | None = None) -> Run:
    """Run the CLI once (no shell), feeding ``stdin``, capturing both streams."""
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            list(argv),
            input=stdin or "",
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            check=False,
        )
    except OSError as exc:
        raise GeminiCliNotFound(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
    code = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode  # killed: 128+N
    latency = (time.perf_counter() - started) * 1000
    return Run(tuple(argv), code, proc.stdout, proc.stderr, latency)


def read_result(run: Run, api_model: str) -> Reply:
    """The answer of a successful run, or raise the GeminiCliError describing the failure."""
    out = _last_object(run.stdout)
    if run.exit_code == 0 and out is not None and "error" not in out:
        text = out.get("response")
        if isinstance(text, str):
            tokens_in, tokens_out, models = _tokens(out.get("stats"), api_model)
            return Reply(text, tokens_in, tokens_out, models)
    raise to_error(run, api_model)


def to_error(run: Run, api_model: str | None = None) -> GeminiCliError:
    """A failed run as a ProviderError whose status ``recovery.classify`` understands."""
    from ims_kit.providers.base import redact

    error = _error_object(run)
    kind = error.get("type") if isinstance(error.get("type"), str) else None
    code = error.get("code")
    status = None
    if kind in _FATAL:
        status = _FATAL[kind][1]
    elif kind in _STATUS_BY_TYPE:
        status = _STATUS_BY_TYPE[kind]
    elif run.exit_code in _BY_EXIT:
        kind, status = _BY_EXIT[run.exit_code]
    elif isinstance(code, int) and 400 <= code < 600:
        status = code
    message = error.get("message") if isinstance(error.get("message"), str) else ""
    message = " ".join((message or _stderr_gist(run.stderr)).split())
    if not message:
        message = "no JSON result" if run.exit_code == 0 else f"exited with {run.exit_code}"
    return GeminiCliError(
        redact(message)[:MAX_MESSAGE_CHARS],
        exit_code=run.exit_code or 1,
        model=api_model,
        status=status,
        error_type=kind,
        code=None if code is None else str(code),
        transport=_TRANSPORT.get(str(code)) if status is None else None,
    )


# -- reading what the CLI printed ------------------------------------------------------------
def _objects(text: str) -> list[dict]:
    """Every JSON object that starts a line of ``text`` (the CLI may print other lines too)."""
    decoder = json.JSONDecoder()
    found = []
    for match in _OBJECT_START.finditer(text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(value, dict):
            found.append(value)
    return found


def _last_object(text: str) -> dict | None:
    objects = _objects(text)
    return objects[-1] if objects else None


def _error_object(run: Run) -> dict:
    """The JSON ``error`` the CLI printed (stderr in JSON mode; stdout as a fallback)."""
    for text in (run.stderr, run.stdout):
        for obj in reversed(_objects(text)):
            if isinstance(obj.get("error"), dict):
                return obj["error"]
    return {}


def _stderr_gist(stderr: str) -> str:
    """The most telling plain-text line of stderr: the last one naming an error, else the last."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith("at ")]  # stack frames
    named = [ln for ln in lines if "error" in ln.lower()]
    return (named or lines or [""])[-1]


def _tokens(stats: Any, api_model: str) -> tuple[int | None, int | None, tuple[str, ...]]:
    """Prompt and output tokens from ``stats.models`` (output = candidates + thoughts, as billed).

    The requested model's entry when present; otherwise every model's, summed.
    """
    models = stats.get("models") if isinstance(stats, dict) else None
    if not isinstance(models, dict):
        return None, None, ()
    names = tuple(str(m).removeprefix("models/") for m in models)
    entries = {
        n: v.get("tokens") if isinstance(v, dict) else None for n, v in zip(names, models.values())
    }
    entries = {n: t for n, t in entries.items() if isinstance(t, dict)}
    chosen = [entries[api_model]] if api_model in entries else list(entries.values())
    try:
        tin = sum(_whole(t["prompt"]) for t in chosen)
        tout = sum(_whole(t["candidates"]) + _whole(t.get("thoughts", 0)) for t in chosen)
    except (KeyError, TypeError, ValueError):
        return None, None, names
    return (tin, tout, names) if chosen else (None, None, names)


def _whole(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(value)
    return value
