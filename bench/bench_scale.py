"""Calls at scale: `kit.ask_async` at concurrency 10/50/200, `kit.ask` in sequence and from a
thread pool, each against the bare HTTP client ims_kit itself uses, measured in the same run.

The server is ``async_server.py`` in its own process (an ``asyncio.Protocol``, no thread per
connection, so it is not what limits 200 calls in flight; the threaded vendor server of the
tests cannot serve 200 at once). It answers OpenAI chat completions, ``usage`` included, after
50 ms (``loop.call_later``). Which bare client is "the one ims_kit uses" is read from
``ims_kit.providers.base.ASYNC_CLIENT`` / ``SYNC_CLIENT`` ("httpx" when unset), so this group
keeps measuring the right baseline when the adapters change client. The measuring follows
notes/http_bench (measure_async.py, measure_sync.py): a 1 ms ticker for event-loop lag, the
server's count of accepted connections, interleaved blocks for the sequential latencies.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from async_server import ServerURL, running
from common import Section, Timing, bench_kit, installed, percentile

KEY = "sk-bench-0000000000000000"
PROMPT = "What is the capital of France?"
MODEL = "m"
PATH = "/v1/chat/completions"
BODY = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}]}
HEADERS = {"authorization": f"Bearer {KEY}"}
CMD = "python bench/run.py scale"
DELAY_S = 0.05
HANG_S = 10.0  # a thread-pool call this slow waited on a dead connection (read timeout: 15 s)
CLIENTS = ("httpx", "httpx2", "aiohttp")
TARGET_WALL = {10: 1.15, 50: 1.3, 200: 2.0}  # wall time / ideal, per concurrency
# rounds of (bare client, kit, kit without writes) where one run's verdict flips from run to
# run; the table shows the median round by the kit's calls/s against the bare client's
ROUNDS = {10: 1, 50: 3, 200: 3}

Post = Callable[[], Awaitable[Any]]
Close = Callable[[], Awaitable[None]]


# ---------------------------------------------------------------- shared pieces
def _used_clients() -> tuple[str, str]:
    """(async, sync) client ims_kit's HTTP adapters use: the constants, else httpx."""
    from ims_kit.providers import base

    a = getattr(base, "ASYNC_CLIENT", "httpx")
    s = getattr(base, "SYNC_CLIENT", "httpx")
    return (a if a in CLIENTS else "httpx"), (s if s in ("httpx", "httpx2") else "httpx")


def _versions() -> str:
    used_async, used_sync = _used_clients()
    have = ", ".join(f"{p} {installed(p) or 'not installed'}" for p in (*CLIENTS, "httpcore"))
    return f"ims_kit uses {used_async} (async) and {used_sync} (sync); installed: {have}."


def _kit(tmp: Path, url: str, name: str, timeout_s: float | None = None):
    """A Kit on a fresh file with model "m" on the loopback server, and its OpenAI adapter."""
    from ims_kit.providers import get_provider
    from ims_kit.records import ModelSpec

    os.environ["OPENAI_API_KEY"] = KEY
    kit = bench_kit(tmp, name)
    kit.registry.register(
        ModelSpec(
            model_id=MODEL,
            vendor="OpenAI",
            provider="openai",
            base_url=f"{url}/v1",
            context_window=128_000,
            cost_per_mil_in=0.15,
            cost_per_mil_out=0.6,
        )
    )
    adapter = get_provider("openai", **({} if timeout_s is None else {"timeout_s": timeout_s}))
    kit.set_provider("openai", adapter)
    return kit, adapter


class CommitTimer:
    """Times ``kit.usage.log_execution`` (what a call waits for its usage row) per call."""

    def __init__(self, kit) -> None:
        self.usage = kit.usage
        self.original = kit.usage.log_execution
        self.samples_ms: list[float] = []

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return self.original(*args, **kwargs)
            finally:
                self.samples_ms.append((time.perf_counter() - started) * 1000)

        self.usage.log_execution = timed  # this kit instance only

    def restore(self) -> None:
        self.usage.log_execution = self.original

    def cells(self) -> str:
        s = self.samples_ms
        if not s:
            return "-"
        return f"{percentile(s, 50):.3f} / {percentile(s, 99):.3f} / {max(s):.1f}"


class LoopSQLTimer:
    """Times every statement the calling thread's connection of ``kit`` runs (the event
    loop's, in the async runs): with ``log_execution``'s hand-off, all the loop waits for
    SQLite."""

    def __init__(self, kit) -> None:
        self.db = kit.db.current if hasattr(kit.db, "current") else kit.db
        self.original = self.db.conn
        self.samples_ms: list[float] = []
        self.db.conn = _TimedConnection(self.original, self.samples_ms)

    def restore(self) -> None:
        self.db.conn = self.original


class _TimedConnection:
    def __init__(self, conn: Any, samples_ms: list[float]) -> None:
        self._conn, self._samples_ms = conn, samples_ms

    def execute(self, *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return self._conn.execute(*args)
        finally:
            self._samples_ms.append((time.perf_counter() - started) * 1000)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


@contextlib.contextmanager
def _no_usage_writes() -> Iterator[None]:
    """The diagnostic run: the writer acknowledges each row at once without writing it, so
    what is left is ims_kit's own work on the loop."""
    from ims_kit.writer import Writer

    original = Writer.submit

    def submit(self: Any, write: Any, *, loop: Any = None) -> Any:
        future = loop.create_future()
        future.set_result(write.done(0))
        return future

    Writer.submit = submit  # type: ignore[method-assign]
    try:
        yield
    finally:
        Writer.submit = original  # type: ignore[method-assign]


def _rows_committed(path: str, expected: int, wait_s: float = 10.0) -> tuple[int, float]:
    """Usage rows another connection sees (a second Kit on the file), waiting up to ``wait_s``
    for a writer that commits later; (rows, seconds waited)."""
    import ims_kit

    started = time.perf_counter()
    with ims_kit.open(path) as reader:
        while True:
            rows = reader.usage.totals()["attempts"]
            waited = time.perf_counter() - started
            if rows >= expected or waited > wait_s:
                return rows, waited
            time.sleep(0.05)


def _count(errors: dict[str, int], exc: BaseException) -> None:
    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1


def _errors(errors: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in errors.items()) or "-"


# ---------------------------------------------------------------- 1. async
async def _bare_async(client: str, url: str, c: int) -> tuple[Post, Close]:
    """One pooled client of ``client``'s library POSTing what the kit sends, JSON parsed."""
    target = url + PATH
    if client == "aiohttp":
        import aiohttp

        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=c),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=120),
        )

        async def post_aiohttp() -> Any:
            async with session.post(target, json=BODY, headers=HEADERS) as response:
                response.raise_for_status()
                return json.loads(await response.read())

        return post_aiohttp, session.close
    mod = __import__(client)
    aclient = mod.AsyncClient(timeout=mod.Timeout(120, connect=10))  # ims_kit's timeouts

    async def post_httpx() -> Any:
        response = await aclient.post(target, json=BODY, headers=HEADERS)
        response.raise_for_status()
        return response.json()

    return post_httpx, aclient.aclose


async def _ticker(lags: list[float], stop: asyncio.Event) -> None:
    """Sleep 1 ms again and again; how late each wake-up is, is what other tasks held the loop."""
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(0.001)
        lags.append((time.perf_counter() - started - 0.001) * 1000)


async def _drive(make: Callable[[], Awaitable[tuple[Post, Close]]], n: int, c: int) -> dict:
    """n calls, at most c in flight, with the lag ticker running; the client made in this loop."""
    post, close = await make()
    sem = asyncio.Semaphore(c)
    latencies: list[float] = []
    errors: dict[str, int] = {}

    async def one() -> None:
        async with sem:
            started = time.perf_counter()
            try:
                await post()
            except Exception as exc:  # a result, not a crash
                _count(errors, exc)
            latencies.append((time.perf_counter() - started) * 1000)

    lags: list[float] = []
    stop = asyncio.Event()
    ticker = asyncio.create_task(_ticker(lags, stop))
    await asyncio.sleep(0.01)  # the ticker settles before the clock starts
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    stop.set()
    await ticker
    await close()
    return {
        "wall": wall,
        "cpu_ms": cpu / n * 1000,
        "p99": percentile(latencies, 99),
        "lag_p99": percentile(lags, 99) if lags else float("nan"),
        "lag_max": max(lags, default=float("nan")),
        "errors": errors,
    }


def _served(url: ServerURL, run: Callable[[], dict]) -> dict:
    url.reset()
    row = run()
    stats = url.stats()
    row["conns"], row["peak"] = stats["connections"], stats["peak_connections"]
    return row


def _bare_async_run(name: str, url: str, n: int, c: int) -> Callable[[], dict]:
    return lambda: asyncio.run(_drive(lambda: _bare_async(name, url, c), n, c))


def _kit_async_run(url: ServerURL, kit, make, n: int, c: int, *, writes: bool = True) -> dict:
    """The kit's run, its usage commits and SQLite on the loop timed, then its rows counted
    from another Kit (``writes=False``: the diagnostic run without usage writes)."""
    timer, sql = CommitTimer(kit), LoopSQLTimer(kit)
    before = _rows_committed(kit.path, 0)[0]
    try:
        with contextlib.nullcontext() if writes else _no_usage_writes():
            row = _served(url, lambda: asyncio.run(_drive(make, n, c)))
    finally:
        timer.restore()
        sql.restore()
    if writes:
        rows, waited = _rows_committed(kit.path, before + n)
        row["rows"] = (rows - before, waited)
        row["commit"], row["sql"] = timer, sql
    return row


def async_calls(quick: bool) -> Section:
    n = 500 if quick else 2_000
    used, _ = _used_clients()
    sec = Section(
        "Async calls at concurrency 10 / 50 / 200",
        CMD,
        f"N = {n} calls of `await kit.ask_async(prompt, model=...)` per concurrency C "
        f"(asyncio.Semaphore(C)), 50 ms answers from the async loopback server in its own "
        f"process; ideal wall time N x 50 ms / C. The baseline is the bare {used} client "
        "ims_kit uses, one pooled client POSTing the same body and parsing the JSON, run just "
        "before the kit; the other bare clients are context. Loop lag: a task sleeping 1 ms, "
        "its lateness p99 / max. Usage commit: `kit.usage.log_execution` timed per call "
        "(median / p99 / max, on the loop). Usage rows: counted by a second Kit on the file "
        "after the run. A diagnostic row runs the kit without writing its usage rows.",
        [
            "C",
            "client",
            "wall / ideal",
            "calls/s",
            "vs bare calls/s",
            "connections opened (peak open)",
            "CPU ms/call",
            "p99 ms",
            "loop lag ms p99 / max",
            "usage commit ms",
            "usage rows",
            "errors",
        ],
    )
    others = [name for name in CLIENTS if name != used]
    verdicts = []
    with tempfile.TemporaryDirectory() as tmp, running(delay_s=DELAY_S) as url:
        kit, adapter = _kit(Path(tmp), url, "scale-async.db")

        async def kit_client() -> tuple[Post, Close]:
            async def post() -> Any:
                return await kit.ask_async(PROMPT, model=MODEL)

            return post, adapter.aclose

        async def warm() -> None:  # imports, the registry row, the first connections
            post, close = await kit_client()
            await asyncio.gather(*(post() for _ in range(20)))
            await close()

        asyncio.run(warm())
        for c in (10, 50, 200):
            ideal = n * DELAY_S / c
            rounds: list[dict[str, dict]] = []
            for r in range(1 if quick else ROUNDS[c]):
                results: dict[str, dict] = {}
                for name in (used, "ims_kit", "ims_kit, no writes", *(others if r == 0 else ())):
                    if name in others and installed(name) is None:
                        continue
                    if name.startswith("ims_kit"):
                        writes = name == "ims_kit"
                        row = _kit_async_run(url, kit, kit_client, n, c, writes=writes)
                    else:
                        row = _served(url, _bare_async_run(name, url, n, c))
                    results[name] = row
                    print(
                        f"  C={c:<3} {name:<8} x{row['wall'] / ideal:6.2f} "
                        f"conn={row['conns']:<5} lag99={row['lag_p99']:.1f}ms "
                        f"errors={row['errors'] or '-'}",
                        file=sys.stderr,
                        flush=True,
                    )
                rounds.append(results)
            speeds = [res[used]["wall"] / res["ims_kit"]["wall"] for res in rounds]
            results = rounds[sorted(range(len(rounds)), key=speeds.__getitem__)[len(rounds) // 2]]
            base = results[used]
            # each run beside the bare client of its round: the median round's, then the
            # context clients, which ran in the first
            shown = {name: (row, base) for name, row in results.items()}
            for name, row in rounds[0].items():
                shown.setdefault(name, (row, rounds[0][used]))
            for name, (row, beside) in shown.items():
                label = {
                    used: f"bare {used} (baseline)",
                    "ims_kit": "ims_kit `kit.ask_async`",
                    "ims_kit, no writes": "ims_kit, usage rows not written (diagnostic)",
                }
                rows_cell = "not written" if name == "ims_kit, no writes" else "-"
                if "rows" in row:
                    got, waited = row["rows"]
                    late = f" (after {waited:.1f} s)" if waited > 0.2 else ""
                    rows_cell = f"{got} / {n}{late}"
                sec.rows.append(
                    [
                        c,
                        label.get(name, f"bare {name} (context)"),
                        f"{row['wall'] / ideal:.2f}",
                        f"{n / row['wall']:,.0f}",
                        f"{beside['wall'] / row['wall']:.2f}x",
                        f"{row['conns']} ({row['peak']})",
                        f"{row['cpu_ms']:.3f}",
                        f"{row['p99']:.0f}",
                        f"{row['lag_p99']:.1f} / {row['lag_max']:.1f}",
                        row["commit"].cells() if "commit" in row else "-",
                        rows_cell,
                        _errors(row["errors"]),
                    ]
                )
            me, dry = results["ims_kit"], results["ims_kit, no writes"]
            wall, target = me["wall"] / ideal, TARGET_WALL[c]
            met = "met" if wall <= target else "NOT met"
            part = f"C={c}: {wall:.2f}x ideal (≤ {target}x {met})"
            on_loop = percentile(me["commit"].samples_ms + me["sql"].samples_ms, 99)
            speed = base["wall"] / me["wall"]
            each = (
                f"; median of {len(speeds)} rounds: {', '.join(f'{x:.3f}x' for x in speeds)}"
                if len(speeds) > 1
                else ""
            )
            part += (
                f", {speed:.3f}x the bare client's calls/s (≥ 0.9x "
                f"{'met' if speed >= 0.9 else 'NOT met'}; without usage writes "
                f"{base['wall'] / dry['wall']:.2f}x{each})"
            )
            part += (
                f", SQLite on the loop p99 {on_loop:.2f} ms (≤ 1 ms "
                f"{'met' if on_loop <= 1 else 'NOT met'}; loop lag p99 {me['lag_p99']:.1f} ms, "
                f"{dry['lag_p99']:.1f} ms without usage writes)"
            )
            got = me["rows"][0]
            part += f", {got}/{n} usage rows {'committed' if got == n else 'MISSING'}"
            verdicts.append(part)
        kit.close()
    sec.verdict = "; ".join(verdicts) + "."
    sec.notes.append(_versions())
    sec.notes.append(
        "Each run is a fresh asyncio.run with a fresh client (the kit's adapter is closed with "
        "`aclose()` after each), so the connections opened include the first wave's. "
        + (
            "One run per client and concurrency (quick)."
            if quick
            else "Rounds of the bare client, the kit and the diagnostic per concurrency: "
            + ", ".join(f"{r} at {c}" for c, r in ROUNDS.items())
            + " in flight (more where one run's verdict changed from run to run); the table "
            "shows the median round by the kit's calls/s against the bare client's, and the "
            "other bare clients ran in the first round, beside its bare client."
        )
    )
    sec.notes.append(
        "SQLite on the loop is measured directly: every statement the loop's connection ran "
        "(the state-version read, at most every 5 ms, and any cache reload) and each "
        "`log_execution` on the loop (which hands the row to the writer thread), timed "
        "together. Loop lag holds more than SQLite: ims_kit's own Python work per call runs "
        "on the loop by design. The diagnostic row tells them apart: the same kit whose "
        "writer acknowledges each row without writing it (no SQLite, no commit to wait for), "
        "so what separates it from the bare client is ims_kit's Python, and what separates "
        "it from the kit is the usage log."
    )
    return sec


# ---------------------------------------------------------------- 2. sequential
def _bare_sync(client: str, timeout_s: float = 120.0):
    mod = __import__(client)
    return mod.Client(timeout=mod.Timeout(timeout_s, connect=10))


def sequential(quick: bool) -> Section:
    n = 500 if quick else 2_000
    block = 100
    _, used = _used_clients()
    sec = Section(
        "Sequential calls",
        CMD,
        f"{n} sequential calls each, in interleaved blocks of {block} (order rotated per "
        "block), to the async loopback server answering at once. The baseline is the bare "
        f"`{used}.Client` ims_kit uses (POST of the same body, JSON parsed); "
        "`kit.ask(model=...)` adds the adapter, the breaker check and a committed usage row.",
        ["client", "latency ms (median / p95 / p99)", "median overhead ms", "p99 ratio"],
    )
    with tempfile.TemporaryDirectory() as tmp, running(delay_s=0.0) as url:
        kit, _ = _kit(Path(tmp), url, "scale-seq.db")
        clients = {used: _bare_sync(used)}
        other = "httpx2" if used == "httpx" else "httpx"
        if installed(other) is not None:
            clients[other] = _bare_sync(other)
        target = url + PATH
        fns: dict[str, Callable[[], Any]] = {
            f"bare {name}": (lambda cl=cl: cl.post(target, json=BODY, headers=HEADERS).json())
            for name, cl in clients.items()
        }
        fns["ims_kit"] = lambda: kit.ask(PROMPT, model=MODEL)
        for fn in fns.values():  # connections, caches, first imports
            for _ in range(50):
                fn()
        timer = CommitTimer(kit)
        timings = {name: Timing() for name in fns}
        order = list(fns)
        for b in range(n // block):
            for name in order[b % len(order) :] + order[: b % len(order)]:
                fn, t = fns[name], timings[name]
                for _ in range(block):
                    started = time.perf_counter()
                    fn()
                    t.add(started)
        timer.restore()
        base, me = timings[f"bare {used}"], timings["ims_kit"]
        for name, t in timings.items():
            label = {f"bare {used}": f"bare {used}.Client (baseline)", "ims_kit": "ims_kit"}
            sec.rows.append(
                [
                    label.get(name, f"{name}.Client (context)"),
                    t.cells(),
                    "-" if t is base else f"{t.median - base.median:+.3f}",
                    f"{t.p(99) / base.p(99):.2f}x",
                ]
            )
        for cl in clients.values():
            cl.close()
        kit.close()
    extra, ratio = me.median - base.median, me.p(99) / base.p(99)
    sec.verdict = (
        f"ims_kit adds {extra:.3f} ms per call at the median (target ≤ 0.25 ms: "
        f"{'met' if extra <= 0.25 else 'NOT met'}); its p99 is {ratio:.2f}x the bare client's "
        f"(target ≤ 1.2x: {'met' if ratio <= 1.2 else 'NOT met'})."
    )
    s = timer.samples_ms
    sec.notes.append(
        f"For scale: the bare client's own p99 is {base.p(99) / base.median:.2f}x its median, "
        f"and ims_kit's median is {me.median / base.p(99):.2f}x the bare client's p99; a p99 "
        "within 1.2x of it asks for a tail tighter than the bare client's own."
    )
    sec.notes.append(
        f"Of that, the usage commit (`kit.usage.log_execution`) takes {percentile(s, 50):.3f} ms "
        f"at the median, {percentile(s, 99):.3f} ms at p99, {max(s):.1f} ms at most "
        f"(over {len(s)} calls, warm-up excluded)."
    )
    sec.notes.append(_versions())
    return sec


# ---------------------------------------------------------------- 3. threads
def _poster(client, target: str) -> Callable[[], Any]:
    return lambda: client.post(target, json=BODY, headers=HEADERS).json()


def _pool_run(url: ServerURL, call: Callable[[], Any], workers: int, n: int) -> dict:
    latencies: list[float] = []
    errors: dict[str, int] = {}

    def one(_: int) -> None:
        started = time.perf_counter()
        try:
            call()
        except Exception as exc:  # a result, not a crash
            _count(errors, exc)
        latencies.append((time.perf_counter() - started) * 1000)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, range(workers)))  # the threads and their connections exist first
        latencies.clear()
        errors.clear()
        url.reset()
        started = time.perf_counter()
        list(pool.map(one, range(n)))
        wall = time.perf_counter() - started
    stats = url.stats()
    return {
        "wall": wall,
        "lat": Timing(latencies),
        "hangs": sum(1 for x in latencies if x > HANG_S * 1000),
        "errors": errors,
        "conns": stats["connections"],
    }


def _then_hand_off(call: Callable[[], Any], handoffs: list[float]) -> None:
    call()
    started = time.perf_counter()
    time.sleep(0)  # gives up the GIL and takes it back: the least a wait costs
    handoffs.append((time.perf_counter() - started) * 1000)


def threads(quick: bool) -> Section:
    n = 500 if quick else 2_000
    _, used = _used_clients()
    sec = Section(
        "Threads sharing one Kit",
        CMD,
        f"N = {n} calls of `kit.ask` from a ThreadPoolExecutor of C workers sharing one Kit "
        "(read timeout 15 s: `set_provider('openai', get_provider('openai', timeout_s=15))`), "
        "50 ms answers, after a warm-up of C calls; the baseline is one shared bare "
        f"`{used}.Client` (the one ims_kit uses, same 15 s timeout) in the same pool. A hang is "
        f"a call that took more than {HANG_S:.0f} s. Usage commit: `kit.usage.log_execution` "
        "timed per call (median / p99 / max). After each bare call its thread also times "
        "`time.sleep(0)`, which only gives up the GIL and takes it back: the least any wait "
        "costs a thread under that load (in the verdict; a commit needs at least two: its "
        "write gives up the GIL, and so does the thread woken by its group's commit).",
        [
            "C",
            "client",
            "wall / ideal",
            "latency ms (median / p99 / max)",
            f"calls > {HANG_S:.0f} s",
            "errors",
            "connections opened",
            "usage commit ms",
        ],
    )
    verdicts = []
    worst_commit = 0.0
    with tempfile.TemporaryDirectory() as tmp, running(delay_s=DELAY_S) as url:
        kit, _ = _kit(Path(tmp), url, "scale-threads.db", timeout_s=15)
        for c in (50, 200):
            ideal = n * DELAY_S / c
            client, handoffs = _bare_sync(used, 15.0), []
            post = functools.partial(_then_hand_off, _poster(client, url + PATH), handoffs)
            bare = _pool_run(url, post, c, n)
            client.close()
            handoffs = handoffs[-n:]
            timer = CommitTimer(kit)
            mine = _pool_run(url, lambda: kit.ask(PROMPT, model=MODEL), c, n)
            timer.restore()
            commits = timer.samples_ms[-n:] if len(timer.samples_ms) > n else timer.samples_ms
            timer.samples_ms = commits  # the warm-up's C commits are not counted
            for label, row, cells in (
                (f"bare {used}.Client (baseline)", bare, "-"),
                ("ims_kit `kit.ask`", mine, timer.cells()),
            ):
                t = row["lat"]
                sec.rows.append(
                    [
                        c,
                        label,
                        f"{row['wall'] / ideal:.2f}",
                        f"{t.median:.0f} / {t.p(99):.0f} / {max(t.samples_ms):,.0f}",
                        row["hangs"],
                        _errors(row["errors"]),
                        row["conns"],
                        cells,
                    ]
                )
                print(
                    f"  C={c:<3} {label[:14]:<14} x{row['wall'] / ideal:6.2f} "
                    f"max={max(t.samples_ms):.0f}ms hangs={row['hangs']} conn={row['conns']}",
                    file=sys.stderr,
                    flush=True,
                )
            p99 = percentile(commits, 99)
            worst_commit = max(worst_commit, p99)
            verdicts.append(
                f"C={c}: {mine['hangs']} hung call(s) of {n} (bare client: {bare['hangs']}), "
                f"usage commit p99 {p99:.2f} ms ({'met' if p99 < 5 else 'NOT met'}; one GIL "
                f"hand-off in the bare client's pool {percentile(handoffs, 99):.2f} ms)"
            )
            saturated = bare["wall"] / ideal
        kit.close()
    hangs = sum(int(r[4]) for r in sec.rows if r[1].startswith("ims_kit"))
    met = hangs == 0 and worst_commit < 5
    sec.verdict = "; ".join(verdicts) + (
        f". Targets (no hang, usage commit p99 < 5 ms): {'met' if met else 'NOT met'}."
    )
    sec.notes.append(
        f"At the highest concurrency the bare client alone takes {saturated:.2f}x the ideal "
        "wall time: the process is CPU-bound, and a thread whose row is committed waits for "
        f"the GIL before it runs again (switch interval {sys.getswitchinterval() * 1000:.0f} "
        "ms), which the usage commit time includes."
    )
    sec.notes.append(_versions())
    return sec


GROUP = [async_calls, sequential, threads]
