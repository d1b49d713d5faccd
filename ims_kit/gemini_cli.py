"""``ims gemini``: Google's gemini CLI on the Gemini model ims_kit selects, through the same
recovery as every call.

One request: check health (the database, a seeded registry, an active Gemini model whose
circuit is not open, the executable), then ``kit.ask`` with the Google models only and the
``gemini_cli`` provider (``ims_kit.providers.gemini_cli``), so selection (``IMS_STRATEGY``,
``IMS_MIN_CONTEXT``), classification, fallback, breakers and usage rows are recovery's. ims
never switches model silently: each switch is announced, and so is an answer that the CLI's
stats name another model for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ims_kit.errors import AllModelsFailed, ImsError, MissingKeyError, StoreError
from ims_kit.providers.gemini_cli import (
    PROVIDER,
    GeminiCliNotFound,
    GeminiCliProvider,
    find_executable,
)
from ims_kit.records import Answer

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

    def __init__(self, failure: AllModelsFailed, exit_code: int):
        self.attempts = failure.attempts
        self.exit_code = exit_code
        super().__init__(f"{failure} (exit {exit_code})")


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
    timeout_s: float | None = None,
    notify: Callable[[str], None] | None = None,
) -> Answer:
    """Answer ``prompt`` with the best Gemini model that works; ``notify`` hears every switch.

    ``stdin`` is given to every run (the gemini CLI reads it as context); ``timeout_s``
    bounds each run (``IMS_GEMINI_TIMEOUT_S``, default 180 s). Raises GeminiCliFailed, with
    the last run's exit code, when no model answers.
    """
    say = notify or (lambda message: None)
    cli = GeminiCliProvider(
        executable=check_health(kit), passthrough=passthrough, stdin=stdin, timeout_s=timeout_s
    )
    kit.set_provider(PROVIDER, cli)
    sized = f"{stdin}\n\n{prompt}" if stdin else prompt
    rec = kit.recommend(sized, vendors=[VENDOR], provider=PROVIDER)
    for c in rec.excluded:
        if c.excluded_by == "circuit open":
            say(f"skipped {c.model_id}: {c.reasons[0]}")
    chain = [c.model_id for c in rec.ranked][: None if fallback else 1]
    try:
        answer = kit.ask(prompt, model=chain[0], fallbacks=chain[1:], provider=PROVIDER)
    except AllModelsFailed as exc:
        _announce(exc.attempts, say)
        raise GeminiCliFailed(exc, cli.last_exit_code or 1) from None
    except MissingKeyError:  # pragma: no cover - the CLI holds its own credentials
        raise
    _announce(answer.attempts, say)
    asked = kit.registry.lookup(answer.model_id).api_model
    if answer.vendor_model and answer.vendor_model != asked:
        say(f"the gemini CLI reports {answer.vendor_model}, not {asked}, for this answer")
    return answer


def _announce(attempts, say: Callable[[str], None]) -> None:
    """One line per switch: which model failed, how, and what recovery did next."""
    for a in attempts:
        if a.action in ("fallback", "fail", "retry", "truncate", "shrink"):
            why = a.error or a.detail
            say(f"{a.model_id}: {a.error_kind}: {a.action} ({why})")
