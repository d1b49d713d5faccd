"""Kit: the facade that wires the stores together; what ``ims_kit.open()`` returns."""

from __future__ import annotations

import functools
import numbers
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ims_kit import tokens
from ims_kit.batch_store import BatchStore
from ims_kit.budgets import Budgets, worst_case_usd
from ims_kit.circuits import CircuitBreaker
from ims_kit.clock import Clock, TimeSource, as_clock
from ims_kit.db import Generation, default_path, file_info, open_db
from ims_kit.errors import ImsError, InvalidInputError, NoModelAvailable
from ims_kit.events import EventLog
from ims_kit.feedback import Feedback
from ims_kit.prompts import Prompt, build_prompt, refused_by_registry
from ims_kit.records import Answer, ModelSpec
from ims_kit.recovery import Recovery, RecoveryPolicy
from ims_kit.registry import Registry
from ims_kit.selector import (
    BALANCED_MARGIN,
    DEFAULT_MIN_CONTEXT,
    DEFAULT_OUTPUT_TOKENS,
    DEFAULT_STRATEGY,
    STRATEGIES,
    Recommendation,
    Request,
    rank,
)
from ims_kit.streams import AStream, Stream, awhole, whole
from ims_kit.usage import UsageTracker
from ims_kit.validators import json_check
from ims_kit.workflow_store import WorkflowStore


def default_database() -> Path:
    """The database ``open()`` uses without a path: ``IMS_DB``, else the per-user file."""
    return default_path()


class Kit:
    """One open database and the parts that work on it (registry, events, ...)."""

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        *,
        store_text: bool | None = None,
        policy: RecoveryPolicy | None = None,
        create: bool = True,
        clock: Clock | TimeSource | None = None,
        telemetry: Any = None,
    ):
        """``create=False`` opens only an existing ims_kit database (StoreError otherwise).

        ``clock`` (epoch seconds, default real time) stamps everything this kit writes: usage
        rows, events, breakers, workflows. Tests and simulations move it by hand.

        ``telemetry``: True exports OpenTelemetry GenAI spans and metrics of every call (the
        ``otel`` extra); None reads ``IMS_OTEL``; a ``Telemetry`` from
        ``ims_kit.telemetry.start(...)`` is used as it is.
        """
        self.db = open_db(path, create=create)
        self.clock = as_clock(clock)
        self.generation = Generation(self.db)  # one state version for the cached stores
        self.session_id = uuid.uuid4().hex[:12]
        self.events = EventLog(self.db, self.clock)
        self.registry = Registry(self.db, self.events, self.clock, self.generation)
        if store_text is None:
            store_text = os.environ.get("IMS_STORE_TEXT", "").lower() in ("1", "true", "yes")
        self.usage = UsageTracker(
            self.db, self.events, self.session_id, store_text=store_text, clock=self.clock
        )
        self.circuits = CircuitBreaker(
            self.db, self.events, clock=self.clock, generation=self.generation
        )
        self.budgets = Budgets(self.db, self.events, self.clock, self.generation)
        self.batches = BatchStore(self.db, self.clock)
        self.verdicts = Feedback(self.db, self.events, self.clock)
        self.usage.budgets = self.budgets
        self.workflow_store = WorkflowStore(self.db, self.events, self.clock)
        self.recovery = Recovery(self.circuits, self.usage, self.events, policy, self.budgets)
        self.recovery.chain_for = self._user_chain
        self.telemetry = _telemetry(telemetry)
        self.recovery.telemetry = self.telemetry
        if self.telemetry.enabled:
            self.events.subscribe(self.telemetry.on_event, "workflow.state_changed")
        self._providers: dict[str, Any] = {}
        self._router: Any = None  # loaded when strategy "learned" first needs it

    @property
    def path(self) -> str:
        """The database file this kit works on."""
        return self.db.conn.execute("PRAGMA database_list").fetchone()[2]

    def database_info(self) -> dict[str, Any]:
        """The file's path, size, journal mode, schema version and pending migration steps."""
        return file_info(self.db)

    def recommend(
        self,
        prompt: str | None = None,
        *,
        messages: list[dict[str, str]] | None = None,
        system: str | None = None,
        provider: str | None = None,
        strategy: str | None = None,
        min_context_window: int | None = None,
        vendors: str | list[str] | None = None,
        exclude_vendors: str | list[str] | None = None,
        capabilities: str | list[str] | None = None,
        max_cost_usd: float | None = None,
        include_inactive: bool = False,
        expected_output_tokens: int = DEFAULT_OUTPUT_TOKENS,
        balanced_margin: float = BALANCED_MARGIN,
        target_quality: float | None = None,
        strong_share: float | None = None,
    ) -> Recommendation:
        """Which model should handle ``prompt`` (or the conversation ``messages``)? Ranked
        candidates with reasons.

        ``strategy`` defaults to ``IMS_STRATEGY``, else cost; ``min_context_window`` to
        ``IMS_MIN_CONTEXT``, else 10,000. ``provider="simulated"`` reads the breakers of
        simulated calls. Appends a ``model.queried`` event for the choice.

        ``strategy="learned"`` scores the prompt with the router (``kit.router``: the shipped
        one, or yours through ``use_router`` / ``IMS_ROUTER``) and sends it to the strong
        candidate when the score reaches the threshold for ``target_quality`` (a share of the
        strong model's accuracy, 0.95 by default) or for ``strong_share`` (a budget of strong
        calls, 0-1); else to the cheap one.
        """
        sized = build_prompt(prompt, messages=messages, system=system, caller="recommend")
        return self._recommend(
            sized,
            provider,
            dict(
                strategy=strategy,
                min_context_window=min_context_window,
                vendors=vendors,
                exclude_vendors=exclude_vendors,
                capabilities=capabilities,
                max_cost_usd=max_cost_usd,
                include_inactive=include_inactive,
                expected_output_tokens=expected_output_tokens,
                balanced_margin=balanced_margin,
                target_quality=target_quality,
                strong_share=strong_share,
            ),
        )

    def _recommend(
        self, prompt: Prompt, provider: str | None, constraints: dict[str, Any]
    ) -> Recommendation:
        request = self._request(prompt, **{**RECOMMEND_DEFAULTS, **constraints})
        models = self.registry.snapshot()
        simulated = provider == "simulated"
        rank_with = functools.partial(
            rank,
            models,
            request,
            stats=self._stats(request.strategy),
            open_circuits=self._open_circuits(simulated=simulated),
        )
        over_budget = self._over_budget(models, request, prompt, simulated)
        try:
            rec = rank_with(over_budget=over_budget)
        except NoModelAvailable:
            if not over_budget:
                raise
            # the budgets are what leaves nothing: say so, for the model they refused first
            top = rank_with().model
            worst = worst_case_usd(top, request.prompt_tokens, prompt.options.max_tokens)
            self.budgets.check(top, worst, simulated=simulated)
            raise
        shown = {
            "min_context_window": request.min_context_window,
            "vendors": list(request.vendors),
            "exclude_vendors": list(request.exclude_vendors),
            "capabilities": list(request.capabilities),
            "max_cost_usd": request.max_cost_usd,
            "include_inactive": request.include_inactive,
        }
        self.events.emit(
            "model.queried",
            rec.model.model_id,
            via="recommend",
            strategy=request.strategy,
            prompt_tokens=request.prompt_tokens,
            constraints={k: v for k, v in shown.items() if v not in (None, [], False)},
        )
        return rec

    def _request(
        self,
        prompt: Prompt,
        *,
        strategy,
        min_context_window,
        vendors,
        exclude_vendors,
        capabilities,
        max_cost_usd,
        include_inactive,
        expected_output_tokens,
        balanced_margin,
        target_quality,
        strong_share,
    ) -> Request:
        from ims_kit.analysis import analyze

        prompt_tokens = tokens.count_prompt(prompt)
        if prompt.options.max_tokens is not None:  # the answer can be no longer than this
            expected_output_tokens = prompt.options.max_tokens
        strategy = strategy or _env_strategy()
        route = {}
        if strategy == "learned":
            route = self._route(prompt, target_quality, strong_share)
        elif target_quality is not None or strong_share is not None:
            raise InvalidInputError(
                "target_quality and strong_share set the learned router's threshold:"
                " they apply with strategy='learned'"
            )
        return Request(
            prompt_tokens=prompt_tokens,
            expected_output_tokens=expected_output_tokens,
            strategy=strategy,
            min_context_window=(
                min_context_window if min_context_window is not None else _env_min_context()
            ),
            vendors=_names(vendors),
            exclude_vendors=_names(exclude_vendors),
            capabilities=_names(capabilities),
            max_cost_usd=max_cost_usd,
            include_inactive=include_inactive,
            balanced_margin=balanced_margin,
            task=analyze(prompt.last_user, prompt_tokens),
            **route,
        )

    # -- the learned router ------------------------------------------------------------------
    @property
    def router(self) -> Any:
        """The router strategy "learned" uses: yours (``use_router``, ``IMS_ROUTER``: a file
        from ``Router.save`` / ``ims route train``), else the one shipped with ims_kit."""
        if self._router is None:
            from ims_kit.routing import default_router, load_router

            path = os.environ.get("IMS_ROUTER", "").strip()
            if path in ("", "default"):
                self._router = default_router()
            else:
                try:
                    self._router = load_router(path)
                except InvalidInputError as exc:
                    raise InvalidInputError(f"IMS_ROUTER: {exc}") from None
        return self._router

    def use_router(self, router: Any) -> None:
        """Route with ``router`` (a Router, or the path of a saved one) from now on."""
        if isinstance(router, str | os.PathLike):
            from ims_kit.routing import load_router

            router = load_router(router)
        if not callable(getattr(router, "score", None)):
            raise InvalidInputError(f"use_router takes a Router or its file, got {router!r}")
        self._router = router

    def _route(self, prompt: Prompt, target_quality: Any, strong_share: Any) -> dict[str, Any]:
        """The router's score of the prompt and the threshold it is held to."""
        if target_quality is not None and strong_share is not None:
            raise InvalidInputError("give target_quality or strong_share, not both")
        router = self.router
        if strong_share is not None:
            if (
                isinstance(strong_share, bool)
                or not isinstance(strong_share, numbers.Real)
                or not (0 <= strong_share <= 1)
            ):
                raise InvalidInputError(f"strong_share must be from 0 to 1, got {strong_share!r}")
            threshold = router.threshold_for_share(strong_share)
            basis = f"{strong_share:.0%} strong calls"
        else:
            quality = 0.95 if target_quality is None else target_quality
            if isinstance(quality, bool) or not isinstance(quality, numbers.Real) or quality <= 0:
                raise InvalidInputError(
                    f"target_quality is a share of the strong model's accuracy, got {quality!r}"
                )
            threshold = router.threshold_for(quality)
            basis = f"for {quality:.0%} of the strong model's quality"
        meta = getattr(router, "metadata", None) or {}
        pair = (meta.get("strong_model"), meta.get("weak_model"))
        return {  # a router reads the latest user turn (what usage keeps as routed_prompt)
            "route_score": float(router.score(prompt.last_user)),
            "route_threshold": float(threshold),
            "route_basis": basis,
            "route_pair": pair if all(isinstance(m, str) for m in pair) else None,
        }

    def ask(
        self,
        prompt: str | None = None,
        *,
        messages: list[dict[str, str]] | None = None,
        system: str | None = None,
        model: str | None = None,
        fallbacks: list[str] | None = None,
        provider: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        stop: str | list[str] | None = None,
        seed: int | None = None,
        json_schema: dict[str, Any] | None = None,
        workflow_id: str | None = None,
        _selection: tuple[str | None, str] | None = None,
        **constraints: Any,
    ) -> Answer:
        """Select a model (or use ``model``), call it with recovery, log every attempt.

        Give a ``prompt`` or a conversation (``messages``, the OpenAI-style list of
        ``{"role", "content"}``), with ``system`` and the generation options. Every argument
        is checked before anything is sent (InvalidInputError names the one that is wrong).
        ``provider="simulated"`` runs offline on the simulated provider whatever the rows say.
        ``constraints`` are those of ``recommend`` (strategy, min_context_window, ...). A
        pinned ``model`` falls back only to the ``fallbacks`` you name.
        """
        plan = self._prepare("ask", locals(), model, fallbacks, provider, constraints)

        def call(spec: ModelSpec, attempt: Prompt):
            return plan.adapter(spec).complete(spec, attempt)

        return self.recovery.run(plan.chain, call, plan.prompt, **plan.context)

    async def ask_async(
        self,
        prompt: str | None = None,
        *,
        messages: list[dict[str, str]] | None = None,
        system: str | None = None,
        model: str | None = None,
        fallbacks: list[str] | None = None,
        provider: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        stop: str | list[str] | None = None,
        seed: int | None = None,
        json_schema: dict[str, Any] | None = None,
        workflow_id: str | None = None,
        **constraints: Any,
    ) -> Answer:
        """``ask`` for async code and Jupyter (``await kit.ask_async(...)``)."""
        plan = self._prepare("ask_async", locals(), model, fallbacks, provider, constraints)

        async def call(spec: ModelSpec, attempt: Prompt):
            return await plan.adapter(spec).acomplete(spec, attempt)

        return await self.recovery.run_async(plan.chain, call, plan.prompt, **plan.context)

    def stream(
        self,
        prompt: str | None = None,
        *,
        messages: list[dict[str, str]] | None = None,
        system: str | None = None,
        model: str | None = None,
        fallbacks: list[str] | None = None,
        provider: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        stop: str | list[str] | None = None,
        seed: int | None = None,
        json_schema: dict[str, Any] | None = None,
        workflow_id: str | None = None,
        **constraints: Any,
    ) -> Stream:
        """``ask``, streamed: iterate for the text pieces as they arrive, then ``.answer``.

        The arguments are checked and the model chosen now; the call starts at the first
        piece asked for. A failure before the first piece is recovered like any call; after
        it, the iterator raises ``StreamInterrupted`` carrying the text so far. Leaving early
        closes the connection and logs the partial call.
        """
        plan = self._prepare("stream", locals(), model, fallbacks, provider, constraints)

        def open_stream(spec: ModelSpec, attempt: Prompt):
            adapter = plan.adapter(spec)
            if hasattr(adapter, "stream"):
                return adapter.stream(spec, attempt)
            return whole(adapter.complete(spec, attempt))

        items = self.recovery.run_stream(plan.chain, open_stream, plan.prompt, **plan.context)
        return Stream(items, plan.chain[0].model_id if plan.chain else None)

    def astream(
        self,
        prompt: str | None = None,
        *,
        messages: list[dict[str, str]] | None = None,
        system: str | None = None,
        model: str | None = None,
        fallbacks: list[str] | None = None,
        provider: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        stop: str | list[str] | None = None,
        seed: int | None = None,
        json_schema: dict[str, Any] | None = None,
        workflow_id: str | None = None,
        **constraints: Any,
    ) -> AStream:
        """``stream`` for async code and Jupyter: ``async for piece in kit.astream(...)``."""
        plan = self._prepare("astream", locals(), model, fallbacks, provider, constraints)

        async def complete_whole(adapter: Any, spec: ModelSpec, attempt: Prompt):
            async for item in awhole(await adapter.acomplete(spec, attempt)):
                yield item

        def open_stream(spec: ModelSpec, attempt: Prompt):
            adapter = plan.adapter(spec)
            if hasattr(adapter, "astream"):
                return adapter.astream(spec, attempt)
            return complete_whole(adapter, spec, attempt)

        items = self.recovery.run_astream(plan.chain, open_stream, plan.prompt, **plan.context)
        return AStream(items, plan.chain[0].model_id if plan.chain else None)

    def _prepare(
        self,
        caller: str,
        args: dict[str, Any],
        model: str | None,
        fallbacks: list[str] | None,
        provider: str | None,
        constraints: dict[str, Any],
    ) -> _Plan:
        """Check every argument, build the Prompt, choose the chain: nothing is sent yet."""
        sent = build_prompt(
            args["prompt"],
            messages=args["messages"],
            system=args["system"],
            json_schema=args["json_schema"],
            caller=caller,
            **{name: args[name] for name in OPTION_NAMES},
        )
        check = None if sent.json_schema is None else json_check(sent.json_schema)
        _check_constraints(caller, constraints, model)
        if provider is not None:
            self.provider(provider)  # an unknown provider name fails now, before any call
        chain, strategy, reason = self._chain(sent, model, fallbacks, provider, constraints)
        if args.get("_selection") is not None:  # the workflow chose the model: its reasons
            strategy, reason = args["_selection"]

        def adapter(spec: ModelSpec):
            return self.provider(provider or spec.provider)

        def refused(spec: ModelSpec, prompt: Prompt) -> dict[str, str]:
            says = getattr(adapter(spec), "refused_options", None)
            return says(spec, prompt) if callable(says) else refused_by_registry(spec)

        context = {
            "strategy": strategy,
            "reason": reason,
            "workflow_id": args["workflow_id"],
            "provider": provider,
            "endpoint_of": lambda spec: _endpoint(adapter(spec), spec),
            "refused_options": refused,
            "check": check,
        }
        return _Plan(sent, chain, adapter, context)

    def feedback(self, call_id: str, *, good: bool, note: str | None = None) -> None:
        """Your verdict on an answer (``answer.call_id``): stored with the workflow's own
        validations, they label your history for ``ims route train --from-history``."""
        self.verdicts.record(call_id, good, source="user", note=note)

    def check_call(self, caller: str = "ask", **call: Any) -> None:
        """Check ``ask``'s arguments (all but the prompt) without calling: InvalidInputError
        names the first that is wrong. What ``map`` does once for a whole batch."""
        constraints = {k: v for k, v in call.items() if k not in ASK_ARGUMENTS}
        _check_constraints(caller, constraints, call.get("model"))
        build_prompt(
            "x",
            system=call.get("system"),
            json_schema=call.get("json_schema"),
            caller=caller,
            **{name: call[name] for name in OPTION_NAMES if name in call},
        )
        if call.get("json_schema") is not None:
            json_check(call["json_schema"])
        if call.get("provider") is not None:
            self.provider(call["provider"])

    def set_provider(self, name: str, adapter: Any) -> None:
        """Use ``adapter`` for every model whose provider is ``name`` (e.g. custom timeouts)."""
        old = self._providers.pop(name, None)
        if old is not None and old is not adapter:
            old.close()
        self._providers[name] = adapter

    def provider(self, name: str):
        """The adapter for a provider name, created once per Kit (connections are reused)."""
        if name not in self._providers:
            from ims_kit.providers import get_provider

            self._providers[name] = get_provider(name)
        return self._providers[name]

    def _chain(
        self,
        prompt: Prompt,
        model: str | None,
        fallbacks: list[str] | None,
        provider: str | None,
        constraints: dict[str, Any],
    ) -> tuple[list[ModelSpec], str | None, str]:
        """The models to try, the strategy that ranked them and why the first was chosen."""
        if model is not None:
            chain = [self.registry.lookup(m) for m in [model, *(fallbacks or [])]]
            return chain, None, "named by model="
        rec = self._recommend(prompt, provider, constraints)
        chain = [c.model for c in rec.ranked]
        if fallbacks is not None:
            chain = chain[:1] + [self.registry.lookup(m) for m in fallbacks]
        return chain, rec.strategy, "; ".join(rec.ranked[0].reasons)

    def _user_chain(
        self, model_id: str, prompt: str, fallbacks: list[str] | None
    ) -> list[ModelSpec]:
        """The chain for ``execute_with_recovery``: the model, then the named fallbacks or,
        by default, the selector's ranking for the prompt."""
        if fallbacks is not None:
            return [self.registry.lookup(m) for m in [model_id, *fallbacks]]
        first = self.registry.lookup(model_id)
        try:
            ranked = [c.model for c in self.recommend(prompt).ranked]
        except ImsError:
            ranked = []
        return [first, *(m for m in ranked if m.model_id != model_id)]

    def _over_budget(
        self, models: list[ModelSpec], request: Request, prompt: Prompt, simulated: bool
    ) -> dict[str, str]:
        """Model id -> why a budget cannot take this request at its worst case."""
        if not self.budgets.active():
            return {}
        costs = {
            m.model_id: worst_case_usd(m, request.prompt_tokens, prompt.options.max_tokens)
            for m in models
        }
        return self.budgets.blocked(models, costs, simulated=simulated)

    def _stats(self, strategy: str) -> dict:
        """Observed success and latency per model, for the strategies that use them."""
        return self.usage.model_stats() if strategy in ("performance", "latency") else {}

    def _open_circuits(self, *, simulated: bool = False) -> dict[str, str]:
        """Model id -> when its open circuit (or its endpoint's) lets a probe through; the
        breakers of simulated calls when ``simulated``."""
        blocked = self.circuits.unavailable(simulated=simulated)
        endpoints = {} if simulated else self.circuits.unavailable(scope="endpoint")
        if endpoints:
            from ims_kit.providers import endpoint_of

            for spec in self.registry.snapshot():
                where = endpoint_of(spec)
                if where in endpoints and spec.model_id not in blocked:
                    blocked[spec.model_id] = f"{endpoints[where]} (endpoint {where})"
        return blocked

    def metrics(self) -> dict[str, Any]:
        """The seed's ``/metrics`` figures: registry size and query counts, per vendor and model."""
        figures: dict[str, Any] = {
            "total_models_registered": len(self.registry),
            "total_model_queries": self.events.count("model.queried"),
            "total_filter_queries": self.events.count("filter.executed"),
        }
        usage = self.usage.totals()  # real and simulated cost apart
        figures["total_requests"] = usage["requests"]
        figures["total_request_failures"] = usage["failures"]
        figures["total_executions"] = usage["attempts"]  # every attempt is an execution
        figures["total_execution_failures"] = usage["failed_attempts"]
        figures["total_cost_usd"] = None if usage["cost"] is None else round(usage["cost"], 6)
        figures["unpriced_executions"] = usage["unpriced_attempts"]
        figures["simulated_requests"] = usage["simulated_requests"]
        figures["simulated_executions"] = usage["simulated_attempts"]
        figures["simulated_cost_usd"] = round(usage["simulated_cost"], 6)
        for vendor, n in self.registry.count_by_vendor().items():
            figures[f"vendor_models:{vendor}"] = n
        for model_id, n in self.events.count_by_subject("model.queried").items():
            figures[f"model_queries:{model_id}"] = n
        return figures

    def close(self) -> None:
        """Close provider connections and the database (and send queued telemetry)."""
        self.telemetry.flush()
        for adapter in self._providers.values():
            adapter.close()
        self._providers.clear()
        self.db.close()

    def __enter__(self) -> Kit:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Kit {self.path} session={self.session_id}>"

    # -- batches (the logic lives in ims_kit.batch) -------------------------------------------
    def map(
        self,
        prompts: Any,
        *,
        concurrency: int = 8,
        batch: str | None = None,
        progress: bool | None = None,
        **call: Any,
    ) -> Any:
        """Ask every prompt (``concurrency`` at a time, in threads); a ``BatchResult`` in input
        order, each entry an ``Answer`` or the ``ImsError`` that ended that prompt.

        ``prompts``: strings, or dicts with ``prompt`` or ``messages`` (and their own
        ``system`` and ``id``). ``call``: what ``ask`` takes (model, fallbacks, provider,
        system, options, json_schema, constraints), checked once before anything is sent. A
        budget that runs out, or Ctrl-C, stops the batch; what finished is returned. A named
        ``batch`` keeps its answers: rerun with the same name, only what has none is sent.
        ``progress``: a bar (a widget in Jupyter); default on in a terminal or notebook.
        """
        from ims_kit.batch import run_map

        return run_map(
            self, prompts, concurrency=concurrency, batch=batch, progress=progress, **call
        )

    async def map_async(
        self,
        prompts: Any,
        *,
        concurrency: int = 32,
        batch: str | None = None,
        progress: bool | None = None,
        **call: Any,
    ) -> Any:
        """``map`` for async code (``await kit.map_async(...)``), on ``ask_async``."""
        from ims_kit.batch import run_map_async

        return await run_map_async(
            self, prompts, concurrency=concurrency, batch=batch, progress=progress, **call
        )

    # -- workflows (the logic lives in ims_kit.workflow and ims_kit.tasks) --------------------
    def workflow(self, workflow_id: str | None = None, *, create: bool = True) -> Any:
        """The ``Workflow`` stored under ``workflow_id``, else a new one saved at once.

        ``create=False`` raises UnknownWorkflowError instead of creating.
        """
        from ims_kit.workflow import open_workflow

        return open_workflow(self.workflow_store, workflow_id, create=create)

    def workflow_from_dict(self, data: dict[str, Any]) -> Any:
        """Restore a ``Workflow`` from ``to_dict()`` output into this database and return it."""
        from ims_kit.workflow import import_workflow

        return import_workflow(self.workflow_store, data)

    def workflows(self, state: str | None = None, limit: int = 50) -> list[Any]:
        """Recent workflows (``WorkflowSummary``), newest first, optionally only in ``state``."""
        from ims_kit.workflow_machine import state_name

        return self.workflow_store.list(None if state is None else state_name(state), limit)

    def run_task(
        self,
        prompt: str,
        *,
        strategy: str | None = None,
        validate: Any = None,
        provider: str | None = None,
        max_model_retries: int = 2,
        max_tokens: int | None = None,
        workflow_id: str | None = None,
        **constraints: Any,
    ) -> Any:
        """Drive ``prompt`` through the workflow and return a ``TaskResult`` (COMPLETED/FAILED).

        ``validate``: None (a non-empty answer), ``"json"``, a JSON schema dict or a callable
        taking the answer text. A rejected answer is retried on another model at most
        ``max_model_retries`` times. ``constraints`` are those of ``recommend``.
        """
        from ims_kit.tasks import run_task

        return run_task(
            self,
            prompt,
            strategy=strategy,
            validate=validate,
            provider=provider,
            max_model_retries=max_model_retries,
            max_tokens=max_tokens,
            workflow_id=workflow_id,
            **constraints,
        )


@dataclass(frozen=True)
class _Plan:
    """A checked call, ready to send: the prompt, the chain, each candidate's adapter and the
    request's context for recovery."""

    prompt: Prompt
    chain: list[ModelSpec]
    adapter: Callable[[ModelSpec], Any]
    context: dict[str, Any]


def _telemetry(choice: Any) -> Any:
    """The Kit's telemetry: off, on (ims_kit's own exporters or the application's providers),
    or the one given."""
    from ims_kit import telemetry

    if choice is None:
        choice = telemetry.wanted()
    if choice is False:
        return telemetry.OFF
    return telemetry.start() if choice is True else choice


def _names(value: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


OPTION_NAMES = ("max_tokens", "temperature", "top_p", "stop", "seed")
ASK_ARGUMENTS = (
    "system", "model", "fallbacks", "provider", *OPTION_NAMES, "json_schema", "workflow_id",
)  # fmt: skip
RECOMMEND_DEFAULTS: dict[str, Any] = {
    "target_quality": None,
    "strong_share": None,
    "strategy": None,
    "min_context_window": None,
    "vendors": None,
    "exclude_vendors": None,
    "capabilities": None,
    "max_cost_usd": None,
    "include_inactive": False,
    "expected_output_tokens": DEFAULT_OUTPUT_TOKENS,
    "balanced_margin": BALANCED_MARGIN,
}


def _endpoint(adapter: Any, spec: ModelSpec) -> str | None:
    """The adapter's endpoint for this model; None for an adapter that has no notion of one."""
    where = getattr(adapter, "endpoint", None)
    return where(spec) if callable(where) else None


def _check_constraints(caller: str, constraints: dict[str, Any], model: str | None) -> None:
    """Unknown keywords and constraints beside a pinned model are errors, named, up front."""
    unknown = sorted(constraints.keys() - RECOMMEND_DEFAULTS.keys())
    if unknown:
        raise InvalidInputError(
            f"{caller}() got an unknown argument {unknown[0]!r}; it takes prompt, messages,"
            f" system, model, fallbacks, provider, {', '.join(OPTION_NAMES)}, json_schema,"
            f" workflow_id and the constraints of recommend(): {', '.join(RECOMMEND_DEFAULTS)}"
        )
    given = [k for k, v in constraints.items() if v not in (None, [], (), False)]
    if model is not None and given:
        raise InvalidInputError(
            f"{caller}(model=...) calls that model: {', '.join(given)} choose a model and"
            " apply only without model="
        )


def _env_strategy() -> str:
    raw = os.environ.get("IMS_STRATEGY", "").strip()
    if raw and raw not in STRATEGIES:
        raise InvalidInputError(
            f"IMS_STRATEGY={raw!r} is not a strategy; known: {', '.join(STRATEGIES)}"
        )
    return raw or DEFAULT_STRATEGY


def _env_min_context() -> int:
    raw = os.environ.get("IMS_MIN_CONTEXT")
    if not raw:
        return DEFAULT_MIN_CONTEXT
    try:
        return int(raw.replace("_", "").replace(",", ""))
    except ValueError:
        raise InvalidInputError(
            f"IMS_MIN_CONTEXT must be a whole number of tokens, got {raw!r}"
        ) from None


def open(path: str | os.PathLike | None = None, **options: Any) -> Kit:
    """Open the ims_kit database (``IMS_DB`` or the per-user default) and return a Kit.

    ``options`` go to ``Kit``: ``store_text=True`` keeps prompts and answers,
    ``policy=RecoveryPolicy(...)`` tunes retries.
    """
    return Kit(path, **options)
