"""Offline demo workloads through the real call path: ``ims simulate`` and ``simulate(kit)``.

A seeded mix of short questions, long documents, code tasks, hard design questions and
private questions for a local model goes through ``kit.ask``, ``kit.stream`` and
``kit.run_task`` with ``provider="simulated"``, so that selection, recovery, breakers, usage
rows, events and workflows fill up exactly as with real vendors (every row says provider
``simulated``).
Fault windows such as ``"gemini-2.5-pro:overload@100-160"`` make every call to that model
fail while requests 100..160 run, so circuits open and, once the window is over, close again.

Without ``rate`` the requests run as fast as they can on a simulated clock that the kit's
every part reads (usage rows, events, breakers, workflows): the requests are spread over a
simulated working day (``span_s``) that ends now, so the dashboard's charts look like a real
user's, and retries do not sleep. A run never stamps anything later than the wall clock: when
earlier traffic sits inside the last ``span_s``, the run fills the time since it. With
``rate`` the calls are spread over real time (that many per second) on the real clock, so that
a dashboard can be watched filling up.
"""

from __future__ import annotations

import contextlib
import random
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ims_kit.errors import ErrorKind, ImsError, InvalidInputError

if TYPE_CHECKING:
    from ims_kit.kit import Kit

DEFAULT_REQUESTS = 300
DEFAULT_SPAN_S = 8 * 3600.0  # a fast run's simulated working day
LAST_CALL_ROOM_S = 60.0  # the last request arrives this long before now, so it ends by then
NOISE = 0.03  # share of requests whose first attempt meets a transient error, as in real traffic
_NOISE_KINDS = {"TIMEOUT": 1, "OVERLOAD": 2, "RATE_LIMIT": 2, "UNKNOWN": 1}
LOCAL_MODEL = "llama-3.1-8b"  # the private questions' model: local, so unpriced
_FAULT = re.compile(
    r"^\s*(?P<model>[^:@\s]+)\s*:\s*(?P<kind>\w+)\s*@\s*(?P<a>\d+)(?:-(?P<b>\d+))?\s*$"
)

# kind: (share of requests, strategies with their weights)
WORKLOAD: dict[str, tuple[float, dict[str, float]]] = {
    "question": (0.5, {"cost": 0.5, "latency": 0.25, "auto": 0.25}),
    "document": (0.2, {"cost": 0.5, "balanced": 0.5}),
    "code": (0.2, {"performance": 0.6, "balanced": 0.2, "auto": 0.2}),
    "design": (0.05, {"auto": 0.6, "performance": 0.4}),
    "private": (0.05, {}),
}
_TOPICS = (
    "vector databases",
    "HTTP caching",
    "the CAP theorem",
    "garbage collection",
    "unit testing",
    "rate limiting",
    "OAuth scopes",
    "SQLite's WAL mode",
    "exponential backoff",
    "circuit breakers",
)
_QUESTIONS = (
    "What is {a} + {b}?",
    "Explain {topic} in two sentences.",
    "Give three tips about {topic}.",
    "What is the capital of France?",
    "Is {topic} worth learning this year? Answer briefly.",
    "Summarise {topic} for a new team member.",
)
_CODE = (
    "Write a Python function that parses ISO-8601 timestamps and returns UTC datetimes.",
    "Implement a thread-safe LRU cache in Python with type hints and unit tests.",
    "Refactor this loop into a list comprehension and explain the change: for x in xs: ...",
    "Write a SQL query that returns the top five customers by revenue per month.",
    "Debug this stack trace and propose a fix: KeyError: 'model_id' in registry.py line 42.",
    "Write a Rust function that merges two sorted vectors without allocating twice.",
)
_DESIGN = (
    "Design a rate limiter for a multi-region API: compare token bucket and sliding window,"
    " explain the trade-offs, and plan the rollout step by step.",
    "Plan the migration of a monolith's database to a sharded cluster: first the schema changes,"
    " then the cut-over, and justify each step.",
    "Compare event sourcing with CRUD for an order service and analyse the trade-offs for"
    " audit, replay and storage.",
    "Design the architecture of an offline-first mobile app: evaluate sync strategies and"
    " explain why conflicts arise, step by step.",
)
_DOCS = ("quarterly report", "meeting transcript", "incident post-mortem", "research paper")
_WORDS = (  # noqa: SIM905 (a sentence of words reads better than a column of strings)
    "revenue growth customer latency incident service region quarter team release metric "
    "budget forecast outage migration database cluster throughput contract roadmap risk "
    "analysis review priority feedback support pipeline deployment capacity summary"
).split()
_PRIVATE = (
    "Summarise this internal HR note for me: {topic} policy changes.",
    "Draft a reply to a customer complaint about {topic}, keep it private.",
)


@dataclass(frozen=True)
class Fault:
    """Every call to ``model_id`` (``*``: any model) fails with ``kind`` during requests
    ``first``..``last`` (numbered from 1, both included)."""

    model_id: str
    kind: ErrorKind
    first: int
    last: int

    def __str__(self) -> str:
        return f"{self.model_id}:{self.kind.value.lower()}@{self.first}-{self.last}"


def parse_faults(spec: str | None) -> list[Fault]:
    """Faults from ``"model:kind@first-last, ..."`` (``@n`` alone is one request)."""
    from ims_kit.providers.simulated import parse_kind

    faults = []
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        m = _FAULT.match(part)
        if m is None:
            raise InvalidInputError(
                f"cannot read the fault {part.strip()!r}: write MODEL:KIND@FIRST-LAST,"
                " e.g. gemini-2.5-pro:overload@100-160"
            )
        first = int(m["a"])
        last = int(m["b"]) if m["b"] else first
        if first < 1 or last < first:
            raise InvalidInputError(
                f"fault {part.strip()!r}: requests are numbered from 1 and FIRST <= LAST"
            )
        faults.append(Fault(m["model"], parse_kind(m["kind"]), first, last))
    return faults


@dataclass(frozen=True)
class Job:
    """One request of the workload."""

    kind: str
    prompt: str
    strategy: str | None = None
    model: str | None = None  # pinned (the private questions' local model)
    min_context_window: int | None = None


def workload(requests: int, seed: int, *, local_model: str | None = LOCAL_MODEL) -> list[Job]:
    """The seeded mix of requests: the same list for the same seed."""
    rng = random.Random(seed)
    kinds = [k for k in WORKLOAD if k != "private" or local_model]
    weights = [WORKLOAD[k][0] for k in kinds]
    jobs = []
    for _ in range(requests):
        kind = rng.choices(kinds, weights)[0]
        strategies = WORKLOAD[kind][1]
        strategy = (
            rng.choices(list(strategies), list(strategies.values()))[0] if strategies else None
        )
        topic = rng.choice(_TOPICS)
        if kind == "question":
            text = rng.choice(_QUESTIONS).format(
                a=rng.randint(1, 999), b=rng.randint(1, 999), topic=topic
            )
            jobs.append(Job(kind, text, strategy))
        elif kind == "document":
            tokens = min(40_000, int(rng.lognormvariate(7.6, 0.9)))  # median ~2,000 tokens
            body = " ".join(rng.choice(_WORDS) for _ in range(tokens * 3 // 4))
            text = f"Summarise the following {rng.choice(_DOCS)} in five bullet points:\n\n{body}"
            big = rng.random() < 0.3
            jobs.append(Job(kind, text, strategy, min_context_window=200_000 if big else None))
        elif kind == "code":
            jobs.append(Job(kind, rng.choice(_CODE), strategy))
        elif kind == "design":
            jobs.append(Job(kind, rng.choice(_DESIGN), strategy))
        else:
            jobs.append(Job(kind, rng.choice(_PRIVATE).format(topic=topic), model=local_model))
    return jobs


class SimulatedClock:
    """A clock (epoch seconds) that moves only when told, and never past the wall clock, so a
    fast run's rows are never stamped in the future."""

    def __init__(self, start: float, ceiling: Callable[[], float] = time.time):
        self.now = start
        self._ceiling = ceiling

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now = max(self.now, min(self.now + seconds, self._ceiling()))

    def advance_to(self, when: float) -> None:
        """Move on to ``when`` unless the clock is already past it."""
        self.advance(when - self.now)


@dataclass(frozen=True)
class Outcome:
    """How one request ended."""

    number: int
    kind: str
    ok: bool
    model_id: str | None
    error: str | None = None


@dataclass
class SimulationReport:
    """What a run did: requests, attempts, failures, cost and circuit transitions."""

    database: str
    seed: int
    requests: int = 0
    completed: int = 0
    failed: int = 0
    attempts: int = 0
    failed_attempts: int = 0
    cost_usd: float = 0.0
    unpriced_attempts: int = 0
    seconds: float = 0.0
    simulated_seconds: float | None = None
    faults: list[str] = field(default_factory=list)
    by_kind: Counter = field(default_factory=Counter)
    answered_by: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    circuits: dict[str, list[str]] = field(default_factory=dict)  # model -> transitions
    fallbacks: int = 0
    retries: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``ims simulate --json``)."""
        return {
            "database": self.database,
            "seed": self.seed,
            "requests": self.requests,
            "completed": self.completed,
            "failed": self.failed,
            "attempts": self.attempts,
            "failed_attempts": self.failed_attempts,
            "simulated_cost_usd": round(self.cost_usd, 6),
            "unpriced_attempts": self.unpriced_attempts,
            "seconds": round(self.seconds, 3),
            "simulated_seconds": (
                None if self.simulated_seconds is None else round(self.simulated_seconds, 1)
            ),
            "faults": list(self.faults),
            "by_kind": dict(self.by_kind),
            "answered_by": dict(self.answered_by.most_common()),
            "errors": dict(self.errors),
            "circuits": {m: list(t) for m, t in self.circuits.items()},
            "fallbacks": self.fallbacks,
            "retries": self.retries,
        }

    def _on_event(self, event: Any) -> None:
        p = event.payload
        if event.kind == "model.executed":
            self.attempts += 1
            if not p.get("success"):
                self.failed_attempts += 1
                self.errors[p.get("error_kind") or "UNKNOWN"] += 1
            if p.get("cost_usd") is None:
                self.unpriced_attempts += 1
            else:
                self.cost_usd += p["cost_usd"]
        elif event.kind.startswith("circuit."):
            state = event.kind.removeprefix("circuit.")
            self.circuits.setdefault(event.subject, []).append(state)
        elif event.kind == "recovery.fallback":
            self.fallbacks += 1
        elif event.kind == "recovery.retry":
            self.retries += 1


def simulate(
    kit: Kit,
    *,
    requests: int = DEFAULT_REQUESTS,
    faults: str | list[Fault] | None = None,
    seed: int = 0,
    rate: float | None = None,
    span_s: float = DEFAULT_SPAN_S,
    noise: float = NOISE,
    progress: Callable[[Outcome], None] | None = None,
) -> SimulationReport:
    """Run ``requests`` simulated requests through ``kit`` and report what happened.

    Args:
        faults: a spec such as ``"gemini-2.5-pro:overload@100-160"`` or Fault values.
        seed: the same seed on a fresh database gives the same requests, choices and rows.
        rate: requests per second in real time; None runs at full speed on a simulated clock.
        span_s: the simulated time the requests are spread over when ``rate`` is None.
        noise: share of requests whose first attempt fails with a transient error.
        progress: called with each request's Outcome.
    """
    from ims_kit.providers.simulated import SimulatedProvider
    from ims_kit.recovery import RecoveryPolicy

    if isinstance(requests, bool) or not isinstance(requests, int) or requests < 1:
        raise InvalidInputError(f"requests must be a positive whole number, got {requests!r}")
    if rate is not None and not rate > 0:
        raise InvalidInputError(f"rate must be a positive number of requests per second: {rate!r}")
    if not span_s > 0:
        raise InvalidInputError(f"span_s must be a positive number of seconds, got {span_s!r}")
    if len(kit.registry) == 0:
        raise InvalidInputError("the registry is empty: run `ims init` first")
    plan = parse_faults(faults) if faults is None or isinstance(faults, str) else list(faults)
    for f in plan:
        if f.model_id != "*":
            kit.registry.lookup(f.model_id)  # an unknown model fails now, with the known ones
    local = LOCAL_MODEL if LOCAL_MODEL in kit.registry else None
    jobs = workload(requests, seed, local_model=local)

    provider = SimulatedProvider(seed=seed)
    kit.set_provider("simulated", provider)
    report = SimulationReport(kit.path, seed, faults=[str(f) for f in plan])
    saved_policy = kit.recovery.policy
    clock, arrivals = None, []
    if rate is None:
        now = time.time()
        start = max(now - span_s, _last_activity(kit))
        clock = SimulatedClock(start)
        # Poisson arrivals over the window: given their number, sorted uniform times
        window = max(0.0, now - start - LAST_CALL_ROOM_S)
        draw = random.Random(f"{seed}:arrivals")
        arrivals = sorted(start + draw.random() * window for _ in jobs)
        provider.clock = clock  # each call moves the clock by its simulated duration
        kit.recovery.policy = replace(  # time is simulated: a retry's wait costs nothing
            saved_policy or RecoveryPolicy(),
            wait_initial_s=0.0,
            wait_max_s=0.0,
            wait_jitter_s=0.0,
            wait_for=clock.advance,  # a vendor's "retry after" moves the simulated clock
        )
    unsubscribe = kit.events.subscribe(report._on_event)
    started = time.perf_counter()
    sim_start = clock.now if clock else None
    try:
        with kit.clock.using(clock) if clock is not None else contextlib.nullcontext():
            _drive(kit, jobs, plan, provider, report, clock, arrivals, rate, noise, progress)
    finally:
        unsubscribe()
        provider.clear()
        kit.recovery.policy = saved_policy
        report.seconds = time.perf_counter() - started
        if clock is not None:
            report.simulated_seconds = clock.now - sim_start
    return report


def _drive(kit, jobs, plan, provider, report, clock, arrivals, rate, noise, progress) -> None:
    """Send every job in turn, at its arrival on the simulated clock or paced in real time."""
    noisy = random.Random(f"{report.seed}:noise")
    started = time.perf_counter()
    for number, job in enumerate(jobs, start=1):
        _apply_faults(provider, plan, number)
        if noisy.random() < noise:  # the next call, to whichever model, fails once
            kind = noisy.choices(list(_NOISE_KINDS), list(_NOISE_KINDS.values()))[0]
            provider.inject("*", kind, retry_after_s=1.0 if kind == "RATE_LIMIT" else None)
        if clock is not None:
            clock.advance_to(arrivals[number - 1])
        else:
            delay = started + (number - 1) / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        outcome = _run(kit, job, number)
        report.requests += 1
        report.by_kind[job.kind] += 1
        if outcome.ok:
            report.completed += 1
            report.answered_by[outcome.model_id] += 1
        else:
            report.failed += 1
        if progress is not None:
            progress(outcome)


def _last_activity(kit: Kit) -> float:
    """When the log's latest usage row or breaker change was stamped (0 when none): a new run
    starts after it, so every part's history stays on one time line."""
    from ims_kit.clock import epoch

    stamps = [kit.usage.span()[1], *(s["updated"] for s in kit.circuits.status().values())]
    return max((epoch(t) for t in stamps if t), default=0.0)


def _apply_faults(provider: Any, plan: list[Fault], number: int) -> None:
    """Turn each model's fault on while ``number`` is inside one of its windows, off after."""
    for model_id in {f.model_id for f in plan}:
        active = [f for f in plan if f.model_id == model_id and f.first <= number <= f.last]
        provider.fail_always(model_id, active[-1].kind if active else None)


def _run(kit: Kit, job: Job, number: int) -> Outcome:
    """One request through the real path: a workflow for documents and code, ``ask`` (or
    ``stream``, for half the questions) else."""
    try:
        if job.kind in ("document", "code", "design"):
            constraints = {}
            if job.min_context_window is not None:
                constraints["min_context_window"] = job.min_context_window
            result = kit.run_task(
                job.prompt, strategy=job.strategy, provider="simulated", **constraints
            )
            answered = result.answer.model_id if result.ok and result.answer else None
            return Outcome(number, job.kind, result.ok, answered, result.reason)
        call = dict(model=job.model, strategy=job.strategy, provider="simulated")
        if job.kind == "question" and number % 2 == 0:  # half the questions are streamed
            answer = kit.stream(job.prompt, **call).answer
        else:
            answer = kit.ask(job.prompt, **call)
        return Outcome(number, job.kind, True, answer.model_id)
    except ImsError as exc:
        return Outcome(number, job.kind, False, None, str(exc))
