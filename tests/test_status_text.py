"""`ims status` as text: sections, requests and attempts apart, colour only when asked."""

from __future__ import annotations

import pytest

from ims_kit import health
from ims_kit.status_text import render


def test_text_names_requests_attempts_and_circuits(busy):
    """The text shows requests and attempts apart, real and simulated cost, each circuit."""
    text = render(health.snapshot(busy))
    assert "health: DEGRADED" in text and "! circuit open: gemini-2.5-pro" in text
    lines = {line.split()[0]: line for line in text.splitlines() if line.strip()}
    assert lines["requests"].split()[1:] == ["21", "21"]
    assert lines["attempts"].split()[1:] == ["21", "21"]
    assert "retries at" in text and "probe call in flight" in text
    assert "simulated" in text and "$0.002400" in text


def test_an_empty_log_says_no_calls_yet(seeded):
    """No usage yet: the latency section says so."""
    text = render(health.snapshot(seeded))
    assert "no calls yet" in text and "all closed" in text
    assert f"{len(seeded.registry)} models" in text


def test_a_missing_database_is_one_problem_line(db_path):
    """A down database renders its problem and the provider section, nothing else."""
    text = render(health.read())
    assert "health: DOWN" in text and "run `ims init`" in text and "PROVIDERS" in text
    assert "REGISTRY" not in text


def test_the_install_hint_shows_when_the_gemini_cli_is_missing(seeded, monkeypatch, tmp_path):
    """Without the CLI the text says how to install it."""
    monkeypatch.setenv("PATH", str(tmp_path))
    assert "npm install -g @google/gemini-cli" in render(health.snapshot(seeded))


@pytest.mark.parametrize("color", [True, False])
def test_colour_only_when_asked(busy, color):
    """ANSI codes appear when colour is asked for, never in plain text."""
    text = render(health.snapshot(busy), color=color)
    assert ("\x1b[" in text) is color
    assert "DEGRADED" in text
