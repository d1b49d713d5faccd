"""Google's gemini CLI (``@google/gemini-cli``) as a provider: one run of ``gemini -m MODEL
--prompt=... -o json`` per call, its JSON answer or its failure read into what recovery needs.

Like the HTTP adapters it never retries, logs or reads the registry: ``Recovery`` does that, for
the CLI as for every other call. What the real CLI prints (measured with 0.61.0 against a local
Gemini API; tests/fake_gemini.py reproduces it):

- success: exit 0, pretty JSON on stdout: ``response`` and ``stats.models.<model>.tokens``
  (``prompt``, ``candidates``, ``thoughts``, ...), summed here over the models it lists;
- an API failure: exit = HTTP status mod 256 (429 -> 173, 400 -> 144, 503 -> 247), stdout
  empty, stderr ending with ``{"error": {"type": "Error", "message", "code"}}`` from the last
  line that is exactly ``{``; ``code`` is the HTTP status, or 1 when there is none (a 404's
  "models/x is not found for API version", "fetch failed sending request" for a connection
  that could not be made); 4xx/5xx messages are often the raw error body as a string;
- a per-minute 429 ends "Suggested retry after 7s."; a per-day one says "You have exhausted
  your daily quota on this model.";
- set-up failures print no JSON: exit 55 (untrusted folder), 52 (a settings file), exit 1 with
  usage text for a bad argument; exit 41 (credentials) and 42 (no input) print JSON.

The CLI has already retried 429s, 5xx and connection failures (10 attempts, about four
minutes) when it reports them, so those errors say ``retried_by_provider``: recovery moves on
to another model rather than rerun it. The CLI re-launches itself as a child and ignores
SIGTERM, so it runs in its own process group, killed whole at the timeout. It writes a report
with the whole prompt to ``$TMPDIR`` on every failure: each run gets a private TMPDIR,
removed afterwards, so no prompt is left on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ims_kit.errors import ImsError, InvalidInputError, ProviderError
from ims_kit.prompts import Prompt, as_prompt
from ims_kit.records import Completion, ModelSpec
from ims_kit.vendor_errors import error_fields, overflow, redact

PROVIDER = "gemini_cli"
INSTALL_HINT = "npm install -g @google/gemini-cli"
RESERVED_FLAGS = ("-m", "--model", "-p", "--prompt", "-o", "--output-format")
DEFAULT_TIMEOUT_S = 180.0  # the CLI's own retries of one failure last about four minutes
MAX_MESSAGE_CHARS = 500
TRUST_FIX = (
    "the gemini CLI refuses to run in an untrusted folder: run `gemini` here once and trust"
    " the folder, pass `--skip-trust` (`ims gemini PROMPT -- --skip-trust`), or set"
    " GEMINI_CLI_TRUST_WORKSPACE=true"
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_SUGGESTED = re.compile(r"Suggested retry after (\d+(?:\.\d+)?)s", re.I)
_USAGE = ("Unknown argument", "Not enough arguments following", "Invalid values:", "Cannot use")
_RETRIED = {429, 499} | set(range(500, 600))  # what the CLI retries before it reports


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
    timed_out: bool = False


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


def default_timeout() -> float:
    """``IMS_GEMINI_TIMEOUT_S`` if set (seconds), else 180."""
    raw = os.environ.get("IMS_GEMINI_TIMEOUT_S", "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise InvalidInputError(f"IMS_GEMINI_TIMEOUT_S must be a positive number, got {raw!r}")
    return value


class GeminiCliProvider:
    """Runs the gemini CLI once per call; ``passthrough`` arguments and ``stdin`` go to every
    run (the CLI reads piped input as context before the prompt)."""

    name = PROVIDER

    def __init__(
        self,
        *,
        executable: str | None = None,
        passthrough: Sequence[str] = (),
        stdin: str | None = None,
        timeout_s: float | None = None,
    ):
        clash = [a for a in passthrough if a.split("=", 1)[0] in RESERVED_FLAGS]
        if clash:
            raise InvalidInputError(
                f"{clash[0]} is set by ims (the model is selected, the prompt and the JSON"
                " output are ims's); `ims ask --model` calls one model by name"
            )
        self.executable = executable
        self.passthrough = tuple(passthrough)
        self.stdin = stdin
        self.timeout_s = default_timeout() if timeout_s is None else timeout_s
        self.last_exit_code: int | None = None

    def __repr__(self) -> str:
        return f"GeminiCliProvider(timeout_s={self.timeout_s:g}, passthrough={self.passthrough})"

    def endpoint(self, spec: ModelSpec) -> str:
        """Where the CLI's calls go: ``GOOGLE_GEMINI_BASE_URL``, else Google's API."""
        base = os.environ.get("GOOGLE_GEMINI_BASE_URL", "").strip()
        return (base or "https://generativelanguage.googleapis.com").rstrip("/")

    def refused_options(self, spec: ModelSpec, prompt: Prompt) -> dict[str, str]:
        """Every generation option: the CLI has no flag for any of them."""
        return {name: "the gemini CLI has no flag for it" for name in prompt.options.given()}

    def argv(self, spec: ModelSpec, prompt: Prompt) -> list[str]:
        """``gemini -m MODEL --prompt=TEXT -o json [passthrough...]`` (``--prompt=`` so that a
        prompt starting with "-" is not read as a flag)."""
        exe = self.executable or find_executable()
        return [exe, "-m", spec.api_model, f"--prompt={as_text(prompt)}", "-o", "json",
                *self.passthrough]  # fmt: skip

    def complete(self, spec: ModelSpec, prompt: Prompt | str, **options: Any) -> Completion:
        """Run the CLI once: a ``Completion`` or a ``GeminiCliError`` (never retried here)."""
        argv = self.argv(spec, as_prompt(prompt, **options))
        with _private_tmp() as env:
            run = _run(argv, self.stdin, self.timeout_s, env)
        return self._read(run, spec)

    async def acomplete(self, spec: ModelSpec, prompt: Prompt | str, **options: Any) -> Completion:
        """``complete`` for async code: the CLI runs as an asyncio subprocess."""
        argv = self.argv(spec, as_prompt(prompt, **options))
        with _private_tmp() as env:
            run = await _arun(argv, self.stdin, self.timeout_s, env)
        return self._read(run, spec)

    def _read(self, run: Run, spec: ModelSpec) -> Completion:
        self.last_exit_code = run.exit_code
        if run.timed_out:
            raise GeminiCliError(
                f"no answer within {self.timeout_s:g}s (IMS_GEMINI_TIMEOUT_S): the CLI was stopped",
                exit_code=124,
                model=spec.model_id,
                transport="timeout",
                latency_ms=run.latency_ms,
            )
        out = _last_object(run.stdout)
        if run.exit_code == 0 and out is not None and isinstance(out.get("response"), str):
            tin, tout, models = stats_tokens(out.get("stats"))
            served = models[0] if models else spec.api_model
            return Completion(out["response"], tin, tout, None, None, run.latency_ms, served)
        raise to_error(run, spec.model_id)

    def close(self) -> None:
        """Nothing to release: every run is its own process."""

    async def aclose(self) -> None:
        """Nothing to release."""


def as_text(prompt: Prompt) -> str:
    """The prompt as the one text the CLI takes: the user's words alone, or, with a system
    prompt or several turns, the conversation as a labelled transcript. A JSON Schema (the CLI
    has no structured output) becomes an instruction; the answer is validated all the same."""
    if not prompt.system and len(prompt.messages) == 1:
        text = prompt.messages[0].content
    else:
        lines = [f"System: {prompt.system}"] if prompt.system else []
        lines += [f"{m.role.capitalize()}: {m.content}" for m in prompt.messages]
        text = "\n\n".join(lines)
    if prompt.json_schema is not None:
        schema = json.dumps(dict(prompt.json_schema))
        text += f"\n\nAnswer with JSON only, valid against this JSON Schema: {schema}"
    return text


def to_error(run: Run, model: str | None = None) -> GeminiCliError:
    """A failed run as a ProviderError with the HTTP status and codes the API would give."""
    error = _error_object(run)
    message = error.get("message") if isinstance(error.get("message"), str) else ""
    code = error.get("code")
    status = code if isinstance(code, int) and 400 <= code < 600 else None
    fields: dict[str, Any] = {}
    inner = _json(message)  # 4xx/5xx messages are often the API's raw error body
    if inner is not None:
        fields = error_fields(inner)
        message = fields.get("message") or message
    stderr = _ANSI.sub("", run.stderr)
    transport = None
    error_type = fields.get("error_type")
    if run.exit_code == 55:
        message, error_type = TRUST_FIX, "configuration"
    elif run.exit_code == 52:
        message, error_type = _gist(stderr) or "a settings file is invalid", "configuration"
    elif run.exit_code == 41:
        status = 401
    elif run.exit_code in (1, 42) and not message and any(u in stderr for u in _USAGE):
        message, status = _first_line(stderr), 400  # ims gemini's passthrough arguments
    elif run.exit_code == 42:
        status = 400
    elif status is None and "is not found for API version" in message:
        status = 404
    elif status is None and "fetch failed" in message:
        transport = "connect"
    elif status is None and message.strip() == "terminated":
        transport = "timeout"
    suggested = _SUGGESTED.search(message)
    if suggested and status == 429:  # the CLI's per-minute quota (it has no quota id)
        error_type = error_type or "RetryableQuotaError"
    message = " ".join((message or _gist(stderr) or f"exited with {run.exit_code}").split())
    message = redact(message)[:MAX_MESSAGE_CHARS]
    counts = overflow(message)
    return GeminiCliError(
        message,
        exit_code=run.exit_code or 1,
        model=model,
        status=status,
        error_type=error_type,
        code=fields.get("code") or ("RetryableQuotaError" if suggested else None),
        retry_after_s=float(suggested.group(1)) if suggested else None,
        transport=transport,
        prompt_tokens=counts.prompt_tokens,
        limit_tokens=counts.limit_tokens,
        latency_ms=run.latency_ms,
        retried_by_provider=status in _RETRIED or transport == "connect",
    )


def stats_tokens(stats: Any) -> tuple[int | None, int | None, tuple[str, ...]]:
    """Prompt and output tokens from ``stats.models`` (output = candidates + thoughts, as
    billed), summed over every model the CLI called, and those models' names."""
    models = stats.get("models") if isinstance(stats, Mapping) else None
    if not isinstance(models, Mapping) or not models:
        return None, None, ()
    names = tuple(str(m).removeprefix("models/") for m in models)
    tin = tout = 0
    for entry in models.values():
        t = entry.get("tokens") if isinstance(entry, Mapping) else None
        if not isinstance(t, Mapping):
            return None, None, names
        try:
            tin += _whole(t.get("prompt", 0))
            tout += _whole(t.get("candidates", 0)) + _whole(t.get("thoughts", 0))
        except ValueError:
            return None, None, names
    return tin, tout, names


# -- running the process ---------------------------------------------------------------------
@contextlib.contextmanager
def _private_tmp():
    """The environment of one run, with a TMPDIR of its own that is removed afterwards."""
    folder = tempfile.mkdtemp(prefix="ims-gemini-")
    try:
        yield {**os.environ, "TMPDIR": folder, "TMP": folder, "TEMP": folder}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run(argv: list[str], stdin: str | None, timeout_s: float, env: dict) -> Run:
    """Run the CLI in a process group of its own, killed whole when ``timeout_s`` passes."""
    started = time.perf_counter()
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            start_new_session=True,  # its own group: the CLI's re-launched child dies with it
            env=env,
        )
    except OSError as exc:
        raise GeminiCliNotFound(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
    timed_out = False
    try:
        out, err = proc.communicate(stdin or "", timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc.pid)
        out, err = proc.communicate()
    except BaseException:  # Ctrl-C: stop the CLI too
        _kill_group(proc.pid)
        proc.wait()
        raise
    return Run(tuple(argv), _exit(proc.returncode), out, err, _ms(started), timed_out)


async def _arun(argv: list[str], stdin: str | None, timeout_s: float, env: dict) -> Run:
    started = time.perf_counter()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env=env,
        )
    except OSError as exc:
        raise GeminiCliNotFound(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
    timed_out = False
    try:
        out, err = await asyncio.wait_for(proc.communicate((stdin or "").encode()), timeout_s)
    except TimeoutError:
        timed_out = True
        _kill_group(proc.pid)
        out, err = await proc.communicate()
    except BaseException:  # cancelled: stop the CLI too
        _kill_group(proc.pid)
        await proc.wait()
        raise
    text = (out or b"").decode("utf-8", "replace"), (err or b"").decode("utf-8", "replace")
    return Run(tuple(argv), _exit(proc.returncode), *text, _ms(started), timed_out)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _exit(code: int | None) -> int:
    return 1 if code is None else code if code >= 0 else 128 - code  # killed: 128+N


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


# -- reading what the CLI printed ------------------------------------------------------------
def _last_object(text: str) -> dict | None:
    """The JSON object that starts at the last line of ``text`` that is exactly '{' (a Node
    stack trace before it has '{' lines that are not JSON), or that is the whole text."""
    starts = [m.start() for m in re.finditer(r"^\{\s*$", text, re.M)]
    for start in reversed(starts or [0]):
        found = _json(text[start:])
        if isinstance(found, dict):
            return found
    return None


def _error_object(run: Run) -> dict:
    """The JSON ``error`` the CLI printed (stderr in JSON mode; stdout as a fallback)."""
    for text in (run.stderr, run.stdout):
        obj = _last_object(text)
        if obj is not None and isinstance(obj.get("error"), dict):
            return obj["error"]
    return {}


def _json(text: str) -> Any:
    text = text.strip()
    if not text.startswith(("{", "[")):
        return None
    try:
        return json.JSONDecoder().raw_decode(text)[0]
    except ValueError:
        return None


def _first_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "")


def _gist(stderr: str) -> str:
    """The most telling plain line of stderr: the last one naming an error, else the last."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith(("at ", "Warning:", "Ripgrep", "[STARTUP]"))]
    named = [ln for ln in lines if "error" in ln.lower()]
    return (named or lines or [""])[-1]


def _whole(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(value)
    return value
