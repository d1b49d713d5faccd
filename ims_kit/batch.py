"""``kit.map`` / ``kit.map_async``: many prompts through the one call path, a bounded number
at a time, with results in input order.

Each prompt is its own request (recovery, breakers and budgets per item), so one bad prompt
never sinks the batch: its result is the ``ImsError`` that ended it. A budget that runs out
stops the batch (no new prompt starts) and Ctrl-C stops it; either way what finished is
returned and logged. A *named* batch keeps each answer (table ``batch_items``), so a rerun
with the same name sends only the prompts that have no answer yet.
"""

from __future__ import annotations

import asyncio
import math
import sys
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

from ims_kit.batch_store import digest
from ims_kit.errors import BudgetExceeded, ImsError, InvalidInputError
from ims_kit.formatting import duration_ms, money
from ims_kit.records import Answer

ITEM_KEYS = ("prompt", "messages", "system", "id")  # what one item may say for itself
INTERRUPTED = "interrupted (Ctrl-C)"


class BatchResult(list):
    """One entry per prompt, in input order: an ``Answer``, the ``ImsError`` that ended it,
    or None when the batch stopped before it ran. ``stopped`` says why it stopped early."""

    def __init__(
        self, items: list, *, ids: list, name: str | None, reused: int, stopped: str | None
    ):
        super().__init__(items)
        self.ids = ids
        self.name = name
        self.reused = reused  # answers taken from the named batch's earlier runs
        self.stopped = stopped

    @property
    def answers(self) -> list[Answer]:
        return [r for r in self if isinstance(r, Answer)]

    @property
    def errors(self) -> list[ImsError]:
        return [r for r in self if isinstance(r, ImsError)]

    @property
    def not_run(self) -> int:
        return sum(1 for r in self if r is None)

    def summary(self) -> dict[str, Any]:
        """Counts, cost (real and simulated apart, unpriced answers counted) and latency."""
        answers = self.answers
        real = [a.cost_usd for a in answers if a.provider != "simulated"]
        latencies = sorted(a.latency_ms for a in answers)
        return {
            "prompts": len(self),
            "answered": len(answers),
            "failed": len(self.errors),
            "not_run": self.not_run,
            "from_earlier_runs": self.reused,
            "cost_usd": sum(c for c in real if c is not None),
            "unpriced": sum(1 for a in answers if a.cost_usd is None),
            "simulated_cost_usd": sum(
                a.cost_usd or 0.0 for a in answers if a.provider == "simulated"
            ),
            "p50_latency_ms": _quantile(latencies, 0.5),
            "p95_latency_ms": _quantile(latencies, 0.95),
            "stopped": self.stopped,
        }

    def to_frame(self):
        """One row per prompt: text or error, model, tokens, cost, latency."""
        import pandas as pd

        rows = []
        for i, (key, r) in enumerate(zip(self.ids, self)):
            row: dict[str, Any] = {"item": i, "id": key, "ok": isinstance(r, Answer)}
            if isinstance(r, Answer):
                row.update(
                    text=r.text, error=None, model_id=r.model_id, tokens_in=r.tokens_in,
                    tokens_out=r.tokens_out, cost_usd=r.cost_usd, latency_ms=r.latency_ms,
                )  # fmt: skip
            else:
                row.update(text=None, error=None if r is None else str(r) or type(r).__name__)
            rows.append(row)
        columns = ["item", "id", "ok", "text", "error", "model_id", "tokens_in", "tokens_out",
                   "cost_usd", "latency_ms"]  # fmt: skip
        return pd.DataFrame(rows, columns=columns)

    def describe(self) -> str:
        """One line: how many answered, failed and not run, what it cost, the latency."""
        s = self.summary()
        parts = [f"{s['answered']:,}/{s['prompts']:,} answered"]
        if s["from_earlier_runs"]:
            parts[0] += f" ({s['from_earlier_runs']:,} from earlier runs)"
        if s["failed"]:
            parts.append(f"{s['failed']:,} failed")
        if s["not_run"]:
            parts.append(f"{s['not_run']:,} not run")
        real = any(a.provider != "simulated" for a in self.answers)
        if real or not s["simulated_cost_usd"]:
            parts.append(money(s["cost_usd"], unpriced=s["unpriced"]))
        if s["simulated_cost_usd"]:
            parts.append(f"{money(s['simulated_cost_usd'])} simulated")
        if s["answered"]:
            p50, p95 = duration_ms(s["p50_latency_ms"]), duration_ms(s["p95_latency_ms"])
            parts.append(f"latency p50 {p50}, p95 {p95}")
        line = ", ".join(parts)
        return f"{line}; stopped: {self.stopped}" if self.stopped else line

    def __repr__(self) -> str:
        name = f" {self.name!r}" if self.name else ""
        return f"<BatchResult{name}: {self.describe()}>"

    def _repr_html_(self) -> str:
        return f"<p>{self.describe()}</p>" + self.to_frame().to_html(index=False, na_rep="")


def run_map(
    kit: Any,
    items: Iterable[Any],
    *,
    concurrency: int = 8,
    batch: str | None = None,
    progress: bool | None = None,
    **call: Any,
) -> BatchResult:
    """See ``Kit.map``."""
    run = _Run(kit, items, concurrency, batch, call, "map")
    bar = progress_bar(len(run.jobs), len(run.jobs) - len(run.todo), progress, batch)
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="ims-map")
    futures = [pool.submit(run.one_sync, i, bar) for i in run.todo]
    try:
        for future in futures:
            future.result()
    except KeyboardInterrupt:
        run.stop(INTERRUPTED)
        for future in futures:
            future.cancel()
        wait(futures)  # the calls in flight finish and are logged
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
    return run.result()


async def run_map_async(
    kit: Any,
    items: Iterable[Any],
    *,
    concurrency: int = 32,
    batch: str | None = None,
    progress: bool | None = None,
    **call: Any,
) -> BatchResult:
    """See ``Kit.map_async``."""
    run = _Run(kit, items, concurrency, batch, call, "map_async")
    bar = progress_bar(len(run.jobs), len(run.jobs) - len(run.todo), progress, batch)
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            await run.one_async(i, bar)

    tasks = [asyncio.create_task(one(i)) for i in run.todo]
    try:
        await asyncio.gather(*tasks)
    except (KeyboardInterrupt, asyncio.CancelledError) as exc:
        run.stop(INTERRUPTED)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if isinstance(exc, asyncio.CancelledError):
            raise
    finally:
        bar.close()
    return run.result()


class _Run:
    """One batch run: the checked items, what is already answered, what each came to."""

    def __init__(
        self,
        kit: Any,
        items: Iterable[Any],
        concurrency: int,
        batch: str | None,
        call: dict,
        caller: str,
    ):
        if isinstance(items, str | bytes | Mapping) or not isinstance(items, Iterable):
            raise InvalidInputError(
                f"{caller}() takes a list of prompts, got {type(items).__name__}"
            )
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidInputError(
                f"{caller}(): concurrency must be at least 1, got {concurrency!r}"
            )
        if batch is not None and (not isinstance(batch, str) or not batch.strip()):
            raise InvalidInputError(f"{caller}(): batch must be a non-empty name, got {batch!r}")
        _check_call(kit, call, caller)
        self.kit, self.call, self.batch = kit, call, batch
        self.jobs = [_job(item, n, caller) for n, item in enumerate(items)]
        self.results: list[Any] = [None] * len(self.jobs)
        self.keys = [digest({**job, **_sent(call)}) for job in self.jobs]
        self.store = kit.batches if batch else None
        self.reused = 0
        if self.store is not None:
            for i, (key, stored) in self.store.answered(batch).items():
                if i < len(self.jobs) and key == self.keys[i]:
                    self.results[i] = Answer.from_dict(stored)
                    self.reused += 1
        self.todo = [i for i, r in enumerate(self.results) if r is None]
        self.stopped: str | None = None
        self._lock = threading.Lock()

    def stop(self, why: str) -> None:
        with self._lock:
            self.stopped = self.stopped or why

    def one_sync(self, i: int, bar: Any) -> None:
        if self.stopped:
            return
        try:
            self._done(i, self.kit.ask(**self._args(i)), bar)
        except ImsError as exc:
            self._done(i, exc, bar)

    async def one_async(self, i: int, bar: Any) -> None:
        if self.stopped:
            return
        try:
            outcome: Any = await self.kit.ask_async(**self._args(i))
        except ImsError as exc:
            outcome = exc
        await asyncio.to_thread(self._done, i, outcome, bar)

    def _args(self, i: int) -> dict[str, Any]:
        job = {k: v for k, v in self.jobs[i].items() if k != "id"}
        return {**self.call, **job}

    def _done(self, i: int, outcome: Any, bar: Any) -> None:
        self.results[i] = outcome
        if isinstance(outcome, BudgetExceeded):
            self.stop(f"budget: {outcome}")
        if self.store is not None:
            answer = outcome.to_dict() if isinstance(outcome, Answer) else None
            error = None if answer is not None else str(outcome)
            self.store.record(self.batch, i, self.keys[i], answer, error)
        bar.update(1)

    def result(self) -> BatchResult:
        ids = [job.get("id", i) for i, job in enumerate(self.jobs)]
        return BatchResult(
            self.results, ids=ids, name=self.batch, reused=self.reused, stopped=self.stopped
        )


def _job(item: Any, n: int, caller: str) -> dict[str, Any]:
    """One item as ask's arguments: a string is a prompt; a dict says prompt or messages,
    and may give its own system prompt and an id (kept in the results)."""
    if isinstance(item, str):
        return {"prompt": item}
    if not isinstance(item, Mapping):
        raise InvalidInputError(
            f"{caller}(): item {n} must be a prompt (a string) or a dict with 'prompt' or"
            f" 'messages', got {type(item).__name__}"
        )
    unknown = sorted(set(item) - set(ITEM_KEYS))
    if unknown:
        raise InvalidInputError(
            f"{caller}(): item {n} has unknown key(s) {', '.join(map(repr, unknown))};"
            f" an item takes {', '.join(ITEM_KEYS)} (options go to {caller}() itself)"
        )
    return dict(item)


def _check_call(kit: Any, call: dict[str, Any], caller: str) -> None:
    """The arguments shared by every item are checked once, before anything is sent."""
    for name in ("prompt", "messages"):
        if name in call:
            raise InvalidInputError(f"{caller}(): {name} belongs in the items, not in {caller}()")
    kit.check_call(caller, **call)


def _sent(call: dict[str, Any]) -> dict[str, Any]:
    """What of the shared arguments changes an answer (an item asked with other options is
    asked again)."""
    return {k: v for k, v in call.items() if k not in ("workflow_id",)}


def progress_bar(total: int, initial: int, enabled: bool | None, name: str | None) -> Any:
    """A tqdm bar (a widget in Jupyter); off when ``enabled`` is False, and by default when
    neither a notebook nor a terminal would show it."""
    notebook = _in_notebook()
    if enabled is None:
        enabled = notebook or sys.stderr.isatty()
    if not enabled:
        return _NoBar()
    if notebook and _has_widgets():
        from tqdm.notebook import tqdm
    else:
        from tqdm import tqdm
    return tqdm(total=total, initial=initial, desc=name or "batch", unit="prompt")


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    ip = shell.get_ipython()
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def _has_widgets() -> bool:
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return values[max(0, math.ceil(q * len(values)) - 1)]
