"""OpenTelemetry for teams: every request and attempt as GenAI spans and metrics, optional.

Off unless ``IMS_OTEL=1`` or ``ims_kit.open(telemetry=True)``; then it needs the ``otel``
extra (``pip install "ims_kit[otel]"``), and ``import ims_kit`` still loads no OpenTelemetry
module while it is off. If the application already set a tracer or meter provider, ims_kit
uses it; otherwise it makes its own, exporting with the SDK's OTLP/HTTP exporters, which read
the standard ``OTEL_EXPORTER_OTLP_*``, ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``.
Export runs in the SDK's background threads (batched, a bounded queue), so it never slows or
breaks a call; failures are counted (``export_failures``), not raised; the providers flush at
exit, so ``ims ask`` loses nothing.

The attributes follow the GenAI semantic conventions as published in
open-telemetry/semantic-conventions-genai (no release yet; ``SEMCONV`` names what was
followed): a CLIENT span per attempt named ``{gen_ai.operation.name} {gen_ai.request.model}``
under an INTERNAL span per request, ``ims run``'s workflow as the root of its trace. Facts of
ims_kit's own are under ``ims.``. Prompts and answers are exported only when
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` asks (``true``, ``SPAN_ONLY``,
``SPAN_AND_EVENT``), redacted like every error text.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

from ims_kit.errors import ImsError
from ims_kit.vendor_errors import redact

SEMCONV = (
    "OpenTelemetry GenAI semantic conventions, open-telemetry/semantic-conventions-genai"
    " (unreleased: the gen_ai_latest_experimental attributes of 2026-11)"
)
TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                 16777216, 67108864]  # fmt: skip
DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                    40.96, 81.92]  # fmt: skip
PROVIDER_NAMES = {  # gen_ai.provider.name by ims_kit provider
    "openai": "openai",
    "openai_compatible": "openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
    "gemini_cli": "gcp.gemini",
    "simulated": "ims.simulated",
}
CONTENT_VARIABLE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_CONTENT_ON = {"true", "1", "yes", "span_only", "span_and_event"}
_EXPORT_LOGGERS = ("opentelemetry.exporter", "opentelemetry.sdk._shared_internal")
SCOPE = "ims_kit"
EXIT_FLUSH_S = 2.0  # what a process's exit waits, at most, for its last spans to be sent


class TelemetryUnavailable(ImsError):
    """Telemetry was asked for but the ``otel`` extra is not installed."""


def wanted() -> bool:
    """Whether ``IMS_OTEL`` asks for telemetry."""
    return os.environ.get("IMS_OTEL", "").strip().lower() in ("1", "true", "yes", "on")


def capture_content() -> bool:
    """Whether prompts and answers go on spans (the GenAI content-capture variable)."""
    return os.environ.get(CONTENT_VARIABLE, "").strip().lower() in _CONTENT_ON


def operation(provider: str) -> str:
    """gen_ai.operation.name: Gemini's API generates content, the others chat."""
    return "generate_content" if provider in ("gemini", "gemini_cli") else "chat"


class Telemetry:
    """The tracer and instruments of one Kit (the no-op ``OFF`` when telemetry is off)."""

    enabled = True

    def __init__(self, tracer: Any, meter: Any, own: list[Any], counter: _Failures):
        from opentelemetry import trace

        self._trace = trace
        self.tracer = tracer
        self._own = own  # providers made here (flushed by close); the app's are left alone
        self._failures = counter
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}", description="Number of input and"
            " output tokens used.", explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )  # fmt: skip
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration", unit="s", description="GenAI operation"
            " duration.", explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )  # fmt: skip
        self._ttft = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk", unit="s",
            description="Time to the first chunk of a streamed answer.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )  # fmt: skip
        self._cost = meter.create_counter(
            "ims.client.cost", unit="USD", description="What priced attempts cost (unpriced"
            " ones are not added: unknown is never $0)."
        )  # fmt: skip
        self._workflows: dict[str, Any] = {}

    @property
    def export_failures(self) -> int:
        """Export failures: batches the span exporter could not deliver, and the exporters'
        failure lines (kept off stderr, counted here)."""
        return self._failures.count

    # -- requests and attempts ------------------------------------------------------------
    @contextmanager
    def request(self, state: Any, *, stream: bool) -> Iterator[Any]:
        """The span of one request (INTERNAL, parent of its attempts); the current span
        (a workflow's) is its parent."""
        span = self.tracer.start_span(
            "ims.request",
            kind=self._trace.SpanKind.INTERNAL,
            attributes=_request_attributes(
                state.request_id,
                state.strategy,
                {
                    "ims.selector.reason": state.reason,
                    "ims.workflow_id": state.workflow_id,
                    "ims.candidates": [c.model_id for c in state.candidates][:20],
                    "gen_ai.request.stream": stream or None,
                },
            ),
        )
        state.trace_context = self._trace.set_span_in_context(span)
        state.trace_start_ns = time.time_ns()
        try:
            yield span
        except GeneratorExit:  # a stream closed (after its answer, or left early): no error
            raise
        except BaseException as exc:
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, str(exc)[:200]))
            span.set_attribute("error.type", type(exc).__name__)
            raise
        finally:
            answered = next((a.model_id for a in state.attempts if a.error_kind is None), None)
            if answered:
                span.set_attribute("ims.answered_by", answered)
            span.set_attribute("ims.attempts", len(state.attempts))
            span.end()

    def attempt(
        self,
        spec: Any,
        state: Any,
        record: Any,
        *,
        sent: Any,
        completion: Any = None,
        error: Any = None,
        action: str | None = None,
        breaker: str | None = None,
        endpoint: str | None = None,
        stream: bool = False,
    ) -> None:
        """One attempt's CLIENT span (timed from its usage row) and its metrics."""
        provider = state.provider or spec.provider
        op = operation(provider)
        end_ns = time.time_ns()
        # never before its request began (a simulated latency has not really passed)
        start_ns = max(end_ns - int(record.latency_ms * 1e6), getattr(state, "trace_start_ns", 0))
        attrs = self._attempt_attributes(
            spec, state, record, provider, op, sent, completion, error, action, breaker,
            endpoint, stream,
        )  # fmt: skip
        span = self.tracer.start_span(
            f"{op} {spec.api_model}",
            context=getattr(state, "trace_context", None),
            kind=self._trace.SpanKind.CLIENT,
            start_time=start_ns,
            attributes=attrs,
        )
        if not record.success:
            message = getattr(error, "message", None) or record.error_kind or "failed"
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, message[:200]))
        span.end(end_time=end_ns)
        self._measure(spec, record, provider, op, attrs)

    def _attempt_attributes(
        self, spec, state, record, provider, op, sent, completion, error, action, breaker,
        endpoint, stream,
    ) -> dict[str, Any]:  # fmt: skip
        o = sent.options
        attrs = _recorded_attributes(record, spec.api_model, provider, op) | {
            "gen_ai.request.max_tokens": o.max_tokens,
            "gen_ai.request.temperature": o.temperature,
            "gen_ai.request.top_p": o.top_p,
            "gen_ai.request.seed": o.seed,
            "gen_ai.request.stop_sequences": list(o.stop) or None,
            "gen_ai.request.stream": stream or None,
            "gen_ai.output.type": "json" if sent.json_schema is not None else None,
            "ims.recovery.action": action,
            "ims.breaker.state": breaker,
            "ims.strategy": state.strategy,
            "ims.workflow_id": state.workflow_id,
        }  # fmt: skip
        if completion is not None:
            attrs["gen_ai.response.model"] = completion.model or spec.api_model
            attrs["gen_ai.response.id"] = completion.request_id
            if completion.finish_reason:
                attrs["gen_ai.response.finish_reasons"] = [completion.finish_reason]
        if not record.success and getattr(error, "status", None) is not None:
            attrs["http.response.status_code"] = error.status
        if endpoint:
            parts = urlsplit(endpoint)
            attrs["server.address"] = parts.hostname
            attrs["server.port"] = parts.port or (443 if parts.scheme == "https" else 80)
        if capture_content():
            attrs.update(content(sent, completion))
        return _clean(attrs)

    def _measure(self, spec, record, provider, op, attrs) -> None:
        common = _clean(
            {
                "gen_ai.operation.name": op,
                "gen_ai.provider.name": attrs["gen_ai.provider.name"],
                "gen_ai.request.model": spec.api_model,
                "gen_ai.response.model": attrs.get("gen_ai.response.model"),
                "server.address": attrs.get("server.address"),
                "server.port": attrs.get("server.port"),
            }
        )
        failed = {"error.type": attrs["error.type"]} if "error.type" in attrs else {}
        self._duration.record(record.latency_ms / 1000, {**common, **failed})
        if record.tokens_in or record.tokens_out:
            self._tokens.record(record.tokens_in, {**common, "gen_ai.token.type": "input"})
            self._tokens.record(record.tokens_out, {**common, "gen_ai.token.type": "output"})
        if record.ttft_ms is not None:
            self._ttft.record(record.ttft_ms / 1000, common)
        if record.cost_usd:
            self._cost.add(record.cost_usd, {**common, "ims.simulated": provider == "simulated"})

    # -- workflows -------------------------------------------------------------------------
    @contextmanager
    def workflow(self, workflow_id: str, name: str = "run_task") -> Iterator[Any]:
        """The root span of a workflow run, current while it runs (its requests are its
        children); its state transitions are span events."""
        with self.tracer.start_as_current_span(
            f"invoke_workflow {name}",
            kind=self._trace.SpanKind.INTERNAL,
            attributes=_workflow_attributes(workflow_id),
        ) as span:
            self._workflows[workflow_id] = span
            try:
                yield span
            finally:
                self._workflows.pop(workflow_id, None)

    def on_event(self, event: Any) -> None:
        """An EventLog subscriber: a workflow's transition becomes an event of its span."""
        if event.kind != "workflow.state_changed":
            return
        span = self._workflows.get(event.subject)
        if span is not None:
            span.add_event(
                f"{event.payload.get('event')}",
                _clean(
                    {"ims.from": event.payload.get("source"), "ims.to": event.payload.get("target")}
                ),
            )

    def flush(self, timeout_s: float = 5.0) -> None:
        """Send what is queued now (the providers also flush at exit)."""
        for provider in self._own:
            provider.force_flush(int(timeout_s * 1000))

    # -- replaying the history a file already holds ----------------------------------------
    def replay(self, kit: Any, since: Any = None) -> dict[str, int]:
        """Send the usage rows and workflows of ``kit``'s file as spans, timed as they ran:
        a workflow span with its transitions as events, a request span per request (its
        workflow's child), a CLIENT span per attempt. Returns what was sent."""
        from ims_kit.clock import epoch

        frame = kit.usage.to_frame(since=since)
        workflows: dict[str, Any] = {}
        ids = {w for w in frame["workflow_id"].dropna().unique()} if len(frame) else set()
        for workflow_id in sorted(ids):
            history = kit.workflow(workflow_id, create=False).get_history()
            if not history:
                continue
            times = [int(epoch(t.ts) * 1e9) for t in history]
            span = self.tracer.start_span(
                "invoke_workflow run_task",
                kind=self._trace.SpanKind.INTERNAL,
                start_time=times[0],
                attributes=_workflow_attributes(workflow_id) | REPLAYED,
            )
            for t, ns in zip(history, times):
                span.add_event(t.event, {"ims.from": t.source, "ims.to": t.target}, timestamp=ns)
            workflows[workflow_id] = (span, times[-1])
        requests = attempts = 0
        specs = {m.model_id: m for m in kit.registry.all()}
        for _, rows in frame.groupby("request_id", sort=False):
            rows = rows.sort_values("attempt")
            ends = [int(ts.value) for ts in rows["ts"]]
            starts = [e - int(ms * 1e6) for e, ms in zip(ends, rows["latency_ms"])]
            first = rows.iloc[0]
            parent = workflows.get(first["workflow_id"])
            context = self._trace.set_span_in_context(parent[0]) if parent else None
            request = self.tracer.start_span(
                "ims.request", context=context, kind=self._trace.SpanKind.INTERNAL,
                start_time=min(starts),
                attributes=_request_attributes(
                    first["request_id"], _value(first["strategy"]),
                    {"ims.attempts": len(rows), **REPLAYED},
                ),
            )  # fmt: skip
            inner = self._trace.set_span_in_context(request)
            for (_, row), start, end in zip(rows.iterrows(), starts, ends):
                record = SimpleNamespace(**{k: _value(v) for k, v in row.items()})
                spec = specs.get(record.model_id)
                api_model = spec.api_model if spec else record.model_id
                provider = record.provider or (spec.provider if spec else "unknown")
                op = operation(provider)
                span = self.tracer.start_span(
                    f"{op} {api_model}", context=inner, kind=self._trace.SpanKind.CLIENT,
                    start_time=start,
                    attributes=_clean(_recorded_attributes(record, api_model, provider, op)
                                      | REPLAYED),
                )  # fmt: skip
                if not row["success"]:
                    span.set_status(self._trace.Status(self._trace.StatusCode.ERROR))
                span.end(end_time=end)
                attempts += 1
            request.end(end_time=max(ends))
            requests += 1
        for span, end in workflows.values():
            span.end(end_time=end)
        self.flush()
        return {"workflows": len(workflows), "requests": requests, "attempts": attempts}


REPLAYED = {"ims.replayed": True}  # a span sent by ``replay``, after the fact


def _recorded_attributes(record: Any, api_model: str, provider: str, op: str) -> dict[str, Any]:
    """What one attempt's usage row says, as span attributes: the same live and replayed."""
    counted = record.success or bool(record.tokens_in or record.tokens_out)  # billed
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": op,
        "gen_ai.provider.name": PROVIDER_NAMES.get(provider, provider),
        "gen_ai.request.model": api_model,
        "gen_ai.usage.input_tokens": record.tokens_in if counted else None,
        "gen_ai.usage.output_tokens": record.tokens_out if counted else None,
        "openinference.span.kind": "LLM",
        "ims.model_id": record.model_id,
        "ims.request_id": record.request_id,
        "ims.call_id": record.call_id,
        "ims.attempt": record.attempt,
        "ims.token_source": record.token_source,
        "ims.cost_usd": record.cost_usd,
        "ims.cost.unpriced": record.cost_usd is None,
        "ims.cost.estimated": record.cost_usd is not None and record.token_source == "estimate",
        "ims.simulated": provider == "simulated",
        "ims.fallback_from": record.fallback_from,
    }
    if record.ttft_ms is not None:
        attrs["gen_ai.response.time_to_first_chunk"] = record.ttft_ms / 1000
    if not record.success:
        attrs["error.type"] = record.error_kind or "_OTHER"
    return attrs


def _request_attributes(request_id: Any, strategy: Any, more: Mapping[str, Any]) -> dict:
    return _clean(
        {
            "ims.request_id": request_id,
            "ims.strategy": strategy,
            "openinference.span.kind": "CHAIN",  # how Phoenix names its kind
            **more,
        }
    )


def _workflow_attributes(workflow_id: str) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "invoke_workflow",
        "ims.workflow_id": workflow_id,
        "openinference.span.kind": "CHAIN",
    }


def _value(v: Any) -> Any:
    """A frame cell as an attribute value: NaN and None are no value."""
    if v is None or (isinstance(v, float) and v != v):
        return None
    return v.item() if hasattr(v, "item") else v


_NOTHING = nullcontext()  # stateless, so one serves every request at once


class _Off:
    """Telemetry off: every hook does nothing (and imports nothing)."""

    enabled = False
    export_failures = 0

    def request(self, state: Any, *, stream: bool) -> AbstractContextManager[None]:
        return _NOTHING  # one shared no-op block: no generator per call

    def attempt(self, *args: Any, **kwargs: Any) -> None:
        pass

    @contextmanager
    def workflow(self, workflow_id: str, name: str = "run_task") -> Iterator[None]:
        yield None

    def on_event(self, event: Any) -> None:
        pass

    def flush(self, timeout_s: float = 5.0) -> None:
        pass


OFF = _Off()


class _Failures(logging.Handler):
    """Counts the exporters' failure lines and keeps them off the user's stderr (attached,
    not propagating, to the exporters' loggers when ims_kit made the providers)."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1

    def install(self) -> None:
        for name in _EXPORT_LOGGERS:
            logger = logging.getLogger(name)
            if self not in logger.handlers:
                logger.addHandler(self)
                logger.propagate = False


_SHARED: dict[str, Any] = {}  # the providers ims_kit made, once per process


def start(*, tracer_provider: Any = None, meter_provider: Any = None) -> Telemetry:
    """Telemetry on, on these providers; by default the application's if it set them (the
    global ones), else ims_kit's own, exporting over OTLP/HTTP as the environment says."""
    try:
        from opentelemetry import metrics, trace
    except ImportError:
        raise TelemetryUnavailable(
            'telemetry (IMS_OTEL=1) needs the otel extra: pip install "ims_kit[otel]"'
        ) from None
    from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider

    own: list[Any] = []
    failures = _SHARED.setdefault("failures", _Failures())
    if tracer_provider is None:
        tracer_provider = trace.get_tracer_provider()
        if not isinstance(tracer_provider, SdkTracerProvider):
            tracer_provider = _SHARED.get("tracer_provider") or _own_tracer_provider(failures)
            own.append(tracer_provider)
    if meter_provider is None:
        meter_provider = metrics.get_meter_provider()
        if not isinstance(meter_provider, SdkMeterProvider):
            meter_provider = _SHARED.get("meter_provider") or _own_meter_provider()
            own.append(meter_provider)
    from ims_kit import __version__

    tracer = tracer_provider.get_tracer(SCOPE, __version__)
    meter = meter_provider.get_meter(SCOPE, __version__)
    return Telemetry(tracer, meter, own, failures)


def _own_tracer_provider(failures: _Failures) -> Any:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    failures.install()
    provider = TracerProvider(resource=Resource.create(), shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(_Counted(OTLPSpanExporter(), failures)))
    _SHARED["tracer_provider"] = provider
    _at_exit(provider)
    return provider


def _own_meter_provider() -> Any:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    reader = PeriodicExportingMetricReader(OTLPMetricExporter())  # OTEL_METRIC_EXPORT_INTERVAL
    provider = MeterProvider(
        resource=Resource.create(), metric_readers=[reader], shutdown_on_exit=False
    )
    _SHARED["meter_provider"] = provider
    _at_exit(provider)
    return provider


def _at_exit(provider: Any) -> None:
    """Flush ``provider`` when the process exits, all of ims_kit's providers at once and
    ``EXIT_FLUSH_S`` at most: a collector that does not answer must not hold up the end of
    ``ims ask`` for the exporter's whole retry time."""
    pending = _SHARED.setdefault("at_exit", [])
    if not pending:
        import atexit

        atexit.register(_flush_at_exit)
    pending.append(provider)


def _flush_at_exit() -> None:
    import threading

    threads = [threading.Thread(target=p.shutdown, daemon=True) for p in _SHARED.get("at_exit", [])]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + EXIT_FLUSH_S
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


class _Counted:
    """A span exporter that counts the batches it could not deliver."""

    def __init__(self, inner: Any, failures: _Failures):
        self._inner = inner
        self._failures = failures

    def export(self, spans: Any) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        try:
            result = self._inner.export(spans)
        except Exception:  # the exporter must never raise into the SDK's thread
            result = SpanExportResult.FAILURE
        if result is not SpanExportResult.SUCCESS:
            self._failures.count += 1
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


def content(sent: Any, completion: Any = None) -> dict[str, str]:
    """The opt-in content attributes, in the spec's message format (JSON strings)."""
    out = {
        "gen_ai.input.messages": json.dumps(
            [
                {"role": m.role, "parts": [{"type": "text", "content": redact(m.content)}]}
                for m in sent.messages
            ]
        )
    }
    if sent.system:
        out["gen_ai.system_instructions"] = json.dumps(
            [{"type": "text", "content": redact(sent.system)}]
        )
    if completion is not None:
        message = {
            "role": "assistant",
            "parts": [{"type": "text", "content": redact(completion.text)}],
            "finish_reason": completion.finish_reason or "stop",
        }
        out["gen_ai.output.messages"] = json.dumps([message])
    return out


def _clean(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes without the unset ones (OpenTelemetry takes no None)."""
    return {k: v for k, v in attrs.items() if v is not None and v != []}
