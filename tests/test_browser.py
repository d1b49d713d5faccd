"""The dashboard in a real browser: `streamlit run app.py` driven by Debian's Chromium.

Playwright drives the system Chromium (``executable_path``; no browser download). Locally the
test is skipped, saying why, when Chromium or the playwright package is missing; with CI=true
a missing browser is a failure, never a skip. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import ims_kit
from ims_kit.simulate import simulate

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.slow


@pytest.fixture
def chromium() -> str:
    """The system Chromium's path; skip (locally) or fail (CI=true) when it is missing."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        path, why = None, "the playwright package is not installed (pip install -e '.[dev]')"
    else:
        why = "Chromium is not installed (apt-get install -y chromium)"
    if path is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {why}: the browser test must run in CI")
        pytest.skip(why)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dashboard(tmp_path):
    """`streamlit run app.py` on 127.0.0.1 over a simulated database; yields (url, figures)."""
    db = tmp_path / "ims.db"
    with ims_kit.open(db) as kit:
        kit.registry.seed()
        simulate(kit, requests=200, faults="gemini-2.5-pro:overload@40-70", seed=7)
        figures = kit.usage.overview()
    port = _free_port()
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py")),
            *("--server.headless", "true", "--server.port", str(port)),
            *("--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"),
        ],
        cwd=ROOT,
        env={**os.environ, "IMS_DB": str(db)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    err = server.stderr.read().decode() if server.poll() is not None else ""
                    pytest.fail(f"streamlit did not start on {url}: {err[-2000:]}")
                time.sleep(0.2)
        yield url, figures
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_dashboard_renders_metrics_and_charts_in_chromium(chromium, dashboard):
    """The overview shows the real request count and a drawn plotly chart; the cost page too."""
    from playwright.sync_api import sync_playwright

    url, figures = dashboard
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            outside: list[str] = []  # the dashboard works offline: nothing leaves 127.0.0.1
            page.on(
                "request",
                lambda r: (
                    None
                    if r.url.startswith(("http://127.0.0.1", "http://localhost", "data:", "blob:"))
                    else outside.append(r.url)
                ),
            )
            page.goto(url, wait_until="domcontentloaded")
            requests = page.locator("[data-testid='stMetric']", has_text="Requests")
            requests.wait_for(timeout=60_000)
            page.locator("[data-testid='stPlotlyChart'] .main-svg").first.wait_for(timeout=60_000)
            value = requests.locator("[data-testid='stMetricValue']").inner_text()
            assert value.strip() == f"{figures['requests']:,}"
            assert page.get_by_text("Simulated data.").count() == 1
            bars = page.locator("[data-testid='stPlotlyChart'] .barlayer .point path")
            bars.first.wait_for(timeout=30_000)  # the bars are drawn, not only the frame
            assert bars.count() > 5
            page.screenshot(path=str(ARTIFACTS / "dashboard-overview.png"))

            page.goto(f"{url}/cost", wait_until="domcontentloaded")
            unpriced = page.locator("[data-testid='stMetric']", has_text="Unpriced attempts")
            unpriced.wait_for(timeout=60_000)
            page.locator("[data-testid='stPlotlyChart'] .main-svg").nth(2).wait_for(timeout=60_000)
            shown = unpriced.locator("[data-testid='stMetricValue']").inner_text()
            assert shown.strip() == f"{figures['unpriced_attempts']:,}"
            page.screenshot(path=str(ARTIFACTS / "dashboard-cost.png"))
            assert outside == []
        finally:
            browser.close()
    assert (ARTIFACTS / "dashboard-overview.png").stat().st_size > 10_000
