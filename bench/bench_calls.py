"""What a call costs on top of the HTTP exchange, what a fallback costs, and how often a dead
model is still called: ims_kit against a plain httpx POST and (when installed) LiteLLM, all
against the same loopback OpenAI-compatible server."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx2 as httpx
import vendor_server as vs
from common import ROOT, Section, Timing, bench_kit, installed

KEY = "sk-bench-0000000000000000"
PROMPT = "What is the capital of France?"
CMD = "make bench  (python bench/run.py calls)"


def _kit(tmp: Path, server: vs.VendorServer, *, threshold: int = 3, clock=None):
    from ims_kit.records import ModelSpec

    os.environ["OPENAI_API_KEY"] = KEY
    kit = bench_kit(tmp, f"calls-{time.monotonic_ns()}.db")
    for model_id in ("primary", "backup", "dead"):
        kit.registry.register(
            ModelSpec(
                model_id=model_id,
                vendor="OpenAI",
                provider="openai",
                api_model=model_id,
                base_url=f"{server.url}/v1",
                context_window=128_000,
                cost_per_mil_in=0.15,
                cost_per_mil_out=0.6,
                quality=70,
            )
        )
    kit.circuits.failure_threshold = threshold
    if clock is not None:
        kit.circuits.clock = clock
    return kit


def _litellm():
    if installed("litellm") is None:
        return None
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    return litellm


def _router(litellm, server: vs.VendorServer, models: list[str], **options):
    """LiteLLM's router with one deployment per model group, all on the loopback server."""
    params = {"api_base": f"{server.url}/v1", "api_key": KEY}
    deployments = [
        {"model_name": m, "litellm_params": {"model": f"openai/{m}", **params}} for m in models
    ]
    return litellm.Router(model_list=deployments, **options)


def _interleave(fns: dict, n: int, block: int = 50) -> dict[str, Timing]:
    """Run each function n times, alternating blocks so drift hits all alike."""
    timings = {name: Timing() for name in fns}
    for fn in fns.values():  # warm-up: connections, caches, first imports
        for _ in range(20):
            fn()
    for _ in range(n // block):
        for name, fn in fns.items():
            t = timings[name]
            for _ in range(block):
                started = time.perf_counter()
                fn()
                t.add(started)
    return timings


def overhead(quick: bool) -> Section:
    n = 300 if quick else 1_000
    sec = Section(
        "Per-call overhead",
        CMD,
        f"{n} sequential calls each, in alternating blocks of 50, to the same loopback "
        "OpenAI-compatible server. The baseline is a plain `httpx.Client` POST of the same "
        "request; `kit.ask(model=...)` adds the adapter, the breaker check and a committed "
        "usage row (which is also its `model.executed` event).",
        ["client", "latency ms (median / p95 / p99)", "median overhead ms", "ratio"],
    )
    with tempfile.TemporaryDirectory() as tmp, vs.running_server() as server:
        kit = _kit(Path(tmp), server)
        client = httpx.Client()
        body = {"model": "primary", "messages": [{"role": "user", "content": PROMPT}]}
        url = f"{server.url}/v1/chat/completions"
        headers = {"Authorization": f"Bearer {KEY}"}
        fns = {
            "plain httpx POST (baseline)": lambda: client.post(
                url, json=body, headers=headers
            ).json(),
            "ims_kit `kit.ask(model=...)`": lambda: kit.ask(PROMPT, model="primary"),
        }
        litellm = _litellm()
        if litellm is not None:
            router = _router(litellm, server, ["primary"])
            messages = [{"role": "user", "content": PROMPT}]
            fns["litellm.completion"] = lambda: litellm.completion(
                model="openai/primary", api_base=f"{server.url}/v1", api_key=KEY, messages=messages
            )
            fns["litellm.Router.completion"] = lambda: router.completion(
                model="primary", messages=messages
            )
        timings = _interleave(fns, n)
        base = timings["plain httpx POST (baseline)"]
        for name, t in timings.items():
            extra = t.median - base.median
            sec.rows.append(
                [
                    name,
                    t.cells(),
                    "-" if t is base else f"{extra:+.3f}",
                    f"{t.median / base.median:.2f}x",
                ]
            )
        if litellm is None:
            sec.rows.append(["litellm", "not installed", "-", "-"])
        ims_extra = timings["ims_kit `kit.ask(model=...)`"].median - base.median
        sec.verdict = (
            f"ims_kit adds {ims_extra:.3f} ms per call at the median "
            f"(target: under 0.5 ms): {'met' if ims_extra < 0.5 else 'NOT met'}."
        )
        sec.notes.append(
            f"The loopback server's own cost is inside the baseline: "
            f"{base.median:.3f} ms median per request, client included."
        )
        kit.close()
    return sec


def fallback(quick: bool) -> Section:
    n = 200 if quick else 500
    sec = Section(
        "429 then fallback",
        CMD,
        f"{n} requests whose first model answers 429 (no Retry-After) and whose second model "
        "answers, against the same client's direct success. The breaker is set never to open "
        "here, so every request takes the 429 path.",
        [
            "client",
            "direct ms (median / p95 / p99)",
            "with fallback ms (median / p95 / p99)",
            "added ms (median)",
        ],
    )
    with tempfile.TemporaryDirectory() as tmp, vs.running_server() as server:
        server.fail_always("primary", vs.openai_rate_limit(hint=None))  # no wait hint: fall back
        kit = _kit(Path(tmp), server, threshold=10**9)
        fns = {
            "ims direct": lambda: kit.ask(PROMPT, model="backup"),
            "ims fallback": lambda: kit.ask(PROMPT, model="primary", fallbacks=["backup"]),
        }
        litellm = _litellm()
        if litellm is not None:
            router = _router(
                litellm,
                server,
                ["primary", "backup"],
                fallbacks=[{"primary": ["backup"]}],
                num_retries=0,
            )
            messages = [{"role": "user", "content": PROMPT}]
            fns["litellm direct"] = lambda: router.completion(model="backup", messages=messages)
            fns["litellm fallback"] = lambda: router.completion(model="primary", messages=messages)
        t = _interleave(fns, n)
        for who in ("ims", "litellm"):
            if f"{who} direct" not in t:
                sec.rows.append(["LiteLLM Router(num_retries=0)", "not installed", "-", "-"])
                continue
            d, f = t[f"{who} direct"], t[f"{who} fallback"]
            label = "ims_kit" if who == "ims" else "LiteLLM Router(num_retries=0, fallbacks)"
            sec.rows.append([label, d.cells(), f.cells(), f"{f.median - d.median:+.3f}"])
        added = t["ims fallback"].median - t["ims direct"].median
        sec.verdict = (
            f"a 429 and its fallback add {added:.3f} ms to a request with ims_kit, "
            f"one failed HTTP exchange included (target: under 2 ms): "
            f"{'met' if added < 2 else 'NOT met'}."
        )
        kit.close()
    return sec


def dead_model(quick: bool) -> Section:
    sec = Section(
        "A model that fails every call",
        CMD,
        "100 sequential requests for a model that answers 503 every time, each with a working "
        "fallback: how many requests reach the dead model. ims_kit's breaker opens after 3 "
        "consecutive failures for 60 s, then lets one probe through.",
        ["client", "clock", "requests reaching the dead model", "requests answered"],
    )
    with tempfile.TemporaryDirectory() as tmp, vs.running_server() as server:
        server.fail_always("dead", vs.openai_unavailable())

        class Clock:
            now = 1_800_000_000.0

            def __call__(self):
                return self.now

        for label, clock, step in (
            ("real (the 100 requests take well under 60 s)", None, 0),
            ("simulated: 1 s between requests", Clock(), 1.0),
        ):
            server.reset()
            server.fail_always("dead", vs.openai_unavailable())
            kit = _kit(Path(tmp), server, clock=clock)
            answered = 0
            for _ in range(100):
                answered += kit.ask(PROMPT, model="dead", fallbacks=["backup"]).model_id == "backup"
                if clock is not None:
                    clock.now += step
            sec.rows.append(
                ["ims_kit", label, sum(r.model == "dead" for r in server.requests), answered]
            )
            kit.close()
        litellm = _litellm()
        if litellm is None:
            sec.rows.append(["LiteLLM Router", "-", "not installed", "-"])
        else:
            server.reset()
            server.fail_always("dead", vs.openai_unavailable())
            router = _router(litellm, server, ["dead", "backup"], fallbacks=[{"dead": ["backup"]}])
            answered, made, t = 0, 0, Timing()
            messages = [{"role": "user", "content": PROMPT}]
            deadline = time.monotonic() + (20 if quick else 45)  # its retries sleep: bound it
            while made < 100 and time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    router.completion(model="dead", messages=messages)
                    answered += 1
                except Exception:
                    pass
                t.add(started)
                made += 1
            dead = sum(r.model == "dead" for r in server.requests)
            sec.rows.append(
                [
                    f"LiteLLM Router (one deployment per group, defaults): {made} "
                    "requests in the time budget",
                    "real",
                    f"{dead} ({dead / made:.1f} per request)",
                    answered,
                ]
            )
            sec.notes.append(
                f"LiteLLM's requests took {t.median:,.0f} ms at the median: its "
                "default retries back off before the fallback runs, so only "
                f"{made} of 100 fit in the time budget; each reached the dead "
                "model as shown."
            )
    return sec


CHILD = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {tests!r})
    mode, url, db = sys.argv[1], sys.argv[2], sys.argv[3]
    if mode == "httpx":
        import httpx
        c = httpx.Client()
        body = {{"model": "primary", "messages": [{{"role": "user", "content": "hi"}}]}}
        for _ in range(1000):
            c.post(url + "/v1/chat/completions", json=body,
                   headers={{"Authorization": "Bearer k"}}).json()
    else:
        import ims_kit
        from ims_kit.records import ModelSpec
        os.environ["OPENAI_API_KEY"] = "sk-bench-rss"
        kit = ims_kit.open(db)
        kit.registry.seed()
        kit.registry.register(ModelSpec(model_id="primary", vendor="OpenAI", provider="openai",
                                        base_url=url + "/v1", context_window=128000))
        for _ in range(1000):
            kit.ask("hi", model="primary")
    # VmHWM: this process's peak RSS since exec (ru_maxrss would include the parent's).
    status = open("/proc/self/status").read().split("VmHWM:")[1].split()[0]
    print(int(status))
""")


def memory(quick: bool) -> Section:
    sec = Section(
        "Peak memory of 1,000 calls",
        CMD,
        "Peak RSS of a fresh process that makes 1,000 calls to the loopback server.",
        ["process", "peak RSS (MB)", "ratio"],
    )
    with tempfile.TemporaryDirectory() as tmp, vs.running_server() as server:
        code = CHILD.format(tests=str(ROOT / "tests"))
        rss = {}
        for mode in ("httpx", "ims"):
            out = subprocess.run(
                [sys.executable, "-c", code, mode, server.url, str(Path(tmp) / "rss.db")],
                capture_output=True,
                text=True,
                check=True,
                timeout=300,
            )
            rss[mode] = int(out.stdout.split()[-1]) / 1024
        sec.rows.append(["plain httpx (baseline)", f"{rss['httpx']:.1f}", "1.00x"])
        sec.rows.append(
            ["ims_kit `kit.ask`", f"{rss['ims']:.1f}", f"{rss['ims'] / rss['httpx']:.2f}x"]
        )
        sec.verdict = (
            f"{rss['ims']:.1f} MB (target: under 80 MB): {'met' if rss['ims'] < 80 else 'NOT met'}."
        )
    return sec


def dead_collector(quick: bool) -> Section:
    n = 300 if quick else 1_000
    sec = Section(
        "Telemetry to a dead collector",
        CMD,
        f"{n} sequential `kit.ask(model=...)` calls each, in alternating blocks of 50, to the "
        "loopback server: telemetry off, telemetry on exporting to a live OTLP/HTTP receiver "
        "(the baseline), and telemetry on with its exporters pointed at a port where nothing "
        "listens (every export fails).",
        ["kit", "latency ms (median / p95 / p99)", "ratio to live (median)", "ratio (p99)"],
    )
    try:
        from otlp_receiver import OTLPReceiver

        from ims_kit import telemetry
    except ImportError:
        sec.rows.append(["telemetry", "the otel extra is not installed", "-", "-"])
        return sec
    import ims_kit

    def providers(endpoint: str):
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        tp = TracerProvider()
        tp.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", timeout=1))
        )
        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics", timeout=1),
            export_interval_millis=1000,
        )
        return tp, MeterProvider(metric_readers=[reader])

    with (
        tempfile.TemporaryDirectory() as tmp,
        vs.running_server() as server,
        OTLPReceiver() as receiver,
    ):
        off = _kit(Path(tmp), server)
        live_tp, live_mp = providers(receiver.endpoint)
        dead_tp, dead_mp = providers("http://127.0.0.1:9")
        live = ims_kit.open(
            off.path, telemetry=telemetry.start(tracer_provider=live_tp, meter_provider=live_mp)
        )
        dead = ims_kit.open(
            off.path, telemetry=telemetry.start(tracer_provider=dead_tp, meter_provider=dead_mp)
        )
        fns = {
            "telemetry off": lambda: off.ask(PROMPT, model="primary"),
            "telemetry on, live collector (baseline)": lambda: live.ask(PROMPT, model="primary"),
            "telemetry on, collector dead": lambda: dead.ask(PROMPT, model="primary"),
        }
        timings = _interleave(fns, n)
        base = timings["telemetry on, live collector (baseline)"]
        for name, t in timings.items():
            sec.rows.append(
                [name, t.cells(), f"{t.median / base.median:.2f}x", f"{t.p(99) / base.p(99):.2f}x"]
            )
        dead_t = timings["telemetry on, collector dead"]
        ratio = dead_t.median / base.median
        off_ratio = base.median / timings["telemetry off"].median
        sec.verdict = (
            f"with the collector dead a call takes {ratio:.2f}x its time with a live collector"
            f" at the median ({dead_t.p(99) / base.p(99):.2f}x at p99), and none failed"
            f" (target: no failure, within 1.1x): {'met' if ratio <= 1.1 else 'NOT met'}."
        )
        sec.notes.append(
            f"Telemetry itself (spans, attributes, metrics) costs {off_ratio:.2f}x a call"
            " without it at the median."
        )
        for kit in (dead, live, off):
            kit.close()
        for provider in (live_tp, live_mp, dead_tp, dead_mp):
            provider.shutdown()
    return sec
