"""OpenTelemetry: GenAI spans and metrics, checked on a real OTLP/HTTP receiver in this process
(protobuf decoded with opentelemetry-proto), against the loopback vendor server."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import vendor_server as vs
from lab_setup import KEYS, build_lab
from otlp_receiver import OTLPReceiver

import ims_kit
from ims_kit import telemetry

pytest.importorskip("opentelemetry.sdk")
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

CLIENT, INTERNAL, ERROR = 3, 1, 2


class Collector:
    """A receiver and providers exporting to it; ``flush()`` then read spans and metrics."""

    def __init__(self, rx: OTLPReceiver):
        self.rx = rx
        resource = Resource.create({"service.name": "ims-tests"})
        self.tp = TracerProvider(resource=resource)
        self.tp.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{rx.endpoint}/v1/traces"))
        )
        self.reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=f"{rx.endpoint}/v1/metrics"),
            export_interval_millis=3_600_000,
        )
        self.mp = MeterProvider(resource=resource, metric_readers=[self.reader])
        self.telemetry = telemetry.start(tracer_provider=self.tp, meter_provider=self.mp)

    def spans(self) -> list[dict]:
        self.tp.force_flush()
        return self.rx.spans()

    def metrics(self) -> dict[str, dict]:
        self.mp.force_flush()
        return {m["name"]: m for m in self.rx.metrics()}

    def close(self) -> None:
        self.tp.shutdown()
        self.mp.shutdown()


@pytest.fixture
def collector():
    with OTLPReceiver() as rx:
        c = Collector(rx)
        yield c
        c.close()


@pytest.fixture
def lab(db_path, vendor, monkeypatch, clock, collector):
    vendor.reply_text = "one two three"
    with ims_kit.open(db_path, telemetry=collector.telemetry) as kit:
        yield build_lab(kit, vendor, monkeypatch, clock)


def by_name(spans, name):
    return [s for s in spans if s["name"] == name]


def test_a_request_is_a_span_with_one_client_span_per_attempt(lab, vendor, collector):
    """500 twice then fallback: one INTERNAL request span, its CLIENT children per attempt,
    with the GenAI attributes, ERROR on the failed ones and ims's facts."""
    vendor.fail_always("primary", vs.Fault(500, {"error": {"message": "boom"}}))
    vendor.usage = (11, 3)
    answer = lab.ask("hello there", model="primary", fallbacks=["backup"], max_tokens=50,
                     temperature=0.5)  # fmt: skip
    spans = collector.spans()
    [request] = by_name(spans, "ims.request")
    attempts = [s for s in spans if s["kind"] == CLIENT]
    assert request["kind"] == INTERNAL and len(attempts) == 4
    assert all(s["parent_span_id"] == request["span_id"] for s in attempts)
    assert {s["trace_id"] for s in attempts} == {request["trace_id"]}
    failed = by_name(spans, "chat primary")
    assert len(failed) == 3 and all(s["status_code"] == ERROR for s in failed)
    assert [s["attributes"]["ims.recovery.action"] for s in failed] == [
        "retry",
        "retry",
        "fallback",
    ]
    assert failed[0]["attributes"]["error.type"] == "OVERLOAD"
    [ok] = by_name(spans, "chat backup")
    a = ok["attributes"]
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "backup" and a["gen_ai.response.model"] == "backup"
    assert a["gen_ai.response.id"] == answer.vendor_request_id
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (11, 3)
    assert a["gen_ai.response.finish_reasons"] == ["stop"]
    assert (a["gen_ai.request.max_tokens"], a["gen_ai.request.temperature"]) == (50, 0.5)
    assert a["server.address"] == "127.0.0.1" and a["server.port"] == vendor.port
    assert a["ims.cost_usd"] == pytest.approx(answer.cost_usd) and a["ims.attempt"] == 4
    assert a["ims.token_source"] == "provider" and a["ims.cost.unpriced"] is False
    assert a["ims.fallback_from"] == "primary" and a["ims.breaker.state"] == "closed"
    assert failed[-1]["attributes"]["ims.breaker.state"] == "open"
    assert request["attributes"]["ims.answered_by"] == "backup"
    assert request["resource"]["service.name"] == "ims-tests"


def test_gemini_generates_content_and_streams_say_their_first_chunk(lab, collector):
    """Gemini's operation is generate_content, provider gcp.gemini; a stream records its time
    to first chunk."""
    answer = lab.stream("hi", model="gem").answer
    spans = collector.spans()
    [request] = by_name(spans, "ims.request")
    assert request["status_code"] != ERROR  # a finished stream is no error
    [span] = [s for s in spans if s["kind"] == CLIENT]
    a = span["attributes"]
    assert span["name"] == "generate_content gem" and a["gen_ai.provider.name"] == "gcp.gemini"
    assert a["gen_ai.request.stream"] is True
    assert a["gen_ai.response.time_to_first_chunk"] == pytest.approx(answer.ttft_ms / 1000)


def test_metrics_use_the_spec_names_units_and_buckets(lab, vendor, collector):
    """token.usage ({token}, input/output) and operation.duration (s) with the spec's
    buckets, the cost counter in USD, the stream's time to first chunk."""
    vendor.usage = (20, 7)
    lab.ask("hello", model="primary")
    assert lab.stream("hello", model="backup").answer.ttft_ms is not None
    m = collector.metrics()
    usage = m["gen_ai.client.token.usage"]
    assert usage["unit"] == "{token}" and usage["type"] == "histogram"
    assert usage["points"][0]["explicit_bounds"] == telemetry.TOKEN_BUCKETS
    types = {p["attributes"]["gen_ai.token.type"]: p["sum"] for p in usage["points"]
             if p["attributes"]["gen_ai.request.model"] == "primary"}  # fmt: skip
    assert types == {"input": 20, "output": 7}
    duration = m["gen_ai.client.operation.duration"]
    assert (
        duration["unit"] == "s"
        and duration["points"][0]["explicit_bounds"] == telemetry.DURATION_BUCKETS
    )
    assert sum(p["count"] for p in duration["points"]) == 2
    cost = m["ims.client.cost"]
    assert cost["unit"] == "USD" and sum(p["value"] for p in cost["points"]) > 0
    assert m["gen_ai.client.operation.time_to_first_chunk"]["unit"] == "s"


def test_content_is_off_by_default_and_on_when_asked(lab, collector, monkeypatch):
    """No prompt or answer unless the content variable asks; then the spec's messages. The
    API keys appear nowhere."""
    lab.ask("my secret question", model="primary", system="Be brief.")
    monkeypatch.setenv(telemetry.CONTENT_VARIABLE, "true")
    lab.ask("my open question", model="primary", system="Be brief.")
    spans = [s for s in collector.spans() if s["kind"] == CLIENT]
    first, second = (s["attributes"] for s in spans)
    assert not any(k.startswith("gen_ai.input") or "secret" in str(v) for k, v in first.items())
    inputs = json.loads(second["gen_ai.input.messages"])
    assert inputs == [{"role": "user", "parts": [{"type": "text", "content": "my open question"}]}]
    assert json.loads(second["gen_ai.system_instructions"])[0]["content"] == "Be brief."
    output = json.loads(second["gen_ai.output.messages"])[0]
    assert output["role"] == "assistant" and output["parts"][0]["content"] == "one two three"
    everything = json.dumps([s["attributes"] for s in collector.rx.spans()])
    assert not any(key in everything for key in KEYS.values())


def test_a_workflow_is_one_trace_with_its_calls_inside(db_path, collector):
    """run_task: the workflow span is the root, its transitions are events, the request span
    and its attempts are inside, in the same trace."""
    with ims_kit.open(db_path, telemetry=collector.telemetry) as kit:
        kit.registry.seed()
        result = kit.run_task("What is 2+2?", provider="simulated")
    spans = collector.spans()
    [root] = by_name(spans, "invoke_workflow run_task")
    [request] = by_name(spans, "ims.request")
    assert root["parent_span_id"] == "" and request["parent_span_id"] == root["span_id"]
    assert {s["trace_id"] for s in spans} == {root["trace_id"]}
    assert [e["name"] for e in root["events"]] == [t.event for t in result.history]
    assert root["attributes"]["ims.workflow_id"] == result.workflow_id
    [attempt] = [s for s in spans if s["kind"] == CLIENT]
    assert attempt["attributes"]["gen_ai.provider.name"] == "ims.simulated"
    assert attempt["attributes"]["ims.workflow_id"] == result.workflow_id


def test_ims_export_otel_replays_the_history(run, db_path, monkeypatch):
    """ims export otel: every request, attempt and workflow already in the file, as spans."""
    run("init")
    run("ask", "hi", "--provider", "simulated")
    run("run", "What is 2+2?", "--provider", "simulated")
    with OTLPReceiver() as rx:
        env = {**os.environ, "IMS_DB": str(db_path), "OTEL_EXPORTER_OTLP_ENDPOINT": rx.endpoint}
        out = subprocess.run([sys.executable, "-c", "from ims_kit.cli import main; main()",
                              "export", "otel", "--since", "1d"],
                             env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "sent 2 requests (2 attempts) and 1 workflows as spans"
        assert rx.wait_for(lambda r: len(r.spans()) >= 5)
        spans = rx.spans()
    assert len(by_name(spans, "ims.request")) == 2
    assert len(by_name(spans, "invoke_workflow run_task")) == 1
    assert all(s["attributes"].get("ims.replayed") for s in spans)
    # a replayed attempt says what its usage row says, as a live one does
    attempts = [s for s in spans if s["attributes"].get("ims.call_id")]
    assert len(attempts) == 2
    for span in attempts:
        assert span["attributes"]["openinference.span.kind"] == "LLM"
        assert span["attributes"]["ims.cost.estimated"] is False
        assert span["attributes"]["gen_ai.usage.output_tokens"] > 0


def _ims(args: list[str], env: dict, code: str = "") -> subprocess.CompletedProcess:
    script = f"{code}\nfrom ims_kit.cli import main; main()"
    return subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip


def test_ims_ask_flushes_its_spans_before_it_exits(run, db_path):
    """IMS_OTEL=1 with the standard variables: a short-lived `ims ask` still delivers."""
    run("init")
    with OTLPReceiver() as rx:
        env = {**os.environ, "IMS_DB": str(db_path), "IMS_OTEL": "1",
               "OTEL_EXPORTER_OTLP_ENDPOINT": rx.endpoint,
               "OTEL_SERVICE_NAME": "notebooks"}  # fmt: skip
        out = _ims(["ask", "hi", "--provider", "simulated"], env)
        assert out.returncode == 0 and out.stdout.strip() == "Hello! How can I help you today?"
        spans = rx.spans()  # already delivered: the process has exited
        metrics = {m["name"] for m in rx.metrics()}
    assert {s["name"] for s in spans} >= {"ims.request"}
    assert spans[0]["resource"]["service.name"] == "notebooks"
    assert "gen_ai.client.operation.duration" in metrics


def test_a_dead_collector_neither_fails_nor_prints(run, db_path):
    """Nothing listening at the endpoint: the call succeeds and stderr stays clean."""
    run("init")
    env = {**os.environ, "IMS_DB": str(db_path), "IMS_OTEL": "1",
           "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
           "OTEL_EXPORTER_OTLP_TIMEOUT": "1"}  # fmt: skip
    out = _ims(["ask", "hi", "--provider", "simulated"], env)
    assert out.returncode == 0 and out.stdout.strip() == "Hello! How can I help you today?"
    assert "Traceback" not in out.stderr and "export" not in out.stderr.lower()


def test_without_the_extra_ims_otel_is_one_line_saying_what_to_install(run, db_path):
    """IMS_OTEL=1 with OpenTelemetry missing: exit 1, one line naming the extra."""
    run("init")
    env = {**os.environ, "IMS_DB": str(db_path), "IMS_OTEL": "1"}
    out = _ims(["ask", "hi", "--provider", "simulated"], env,
               code="import sys; sys.modules['opentelemetry'] = None")  # fmt: skip
    assert out.returncode == 1 and out.stderr.count("\n") == 1
    assert 'pip install "ims_kit[otel]"' in out.stderr


def test_telemetry_off_imports_no_opentelemetry():
    """Without IMS_OTEL, a call loads no OpenTelemetry module."""
    code = ("import sys, tempfile, os, ims_kit\n"
            "k = ims_kit.open(os.path.join(tempfile.mkdtemp(), 'x.db')); k.registry.seed()\n"
            "k.ask('hi', provider='simulated')\n"
            "print(any(m.startswith('opentelemetry') for m in sys.modules))")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "IMS_OTEL"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr
