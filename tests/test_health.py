"""Health: the snapshot behind `ims status` and the Overview, its problems and exit codes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ims_kit import health


def test_missing_database_is_down_and_not_created(db_path):
    """A missing file gives health down with what to do, and is not created."""
    snap = health.read()
    assert snap["health"]["status"] == "down" and health.exit_code(snap) == 2
    assert snap["health"]["problems"] == [f"no database at {db_path}: run `ims init` to create it"]
    assert snap["database"]["exists"] is False and not db_path.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a database" * 100, "is not an SQLite database: move it aside"),
        (b"", "has no ims_kit tables yet: run `ims init`"),
    ],
)
def test_foreign_file_is_down_with_the_fix(db_path, content, message):
    """A file that is not an ims_kit database is named with what to do; it is left as it was."""
    db_path.write_bytes(content)
    snap = health.read()
    assert snap["health"]["status"] == "down" and message in snap["health"]["problems"][0]
    assert db_path.read_bytes() == content


def test_empty_registry_is_degraded(kit):
    """A database with an empty registry is degraded, saying to run ims init."""
    snap = health.read()
    assert snap["health"] == {
        "status": "degraded",
        "problems": ["the registry is empty: run `ims init`"],
    }
    assert health.exit_code(snap) == 1
    assert snap["usage"]["all_time"]["requests"] == 0


def test_seeded_database_is_ok(seeded):
    """Database, registry and provider figures match the stores; health is ok."""
    snap = health.snapshot(seeded)
    assert snap["health"] == {"status": "ok", "problems": []} and health.exit_code(snap) == 0
    assert snap["database"]["path"] == seeded.path
    assert snap["database"]["journal_mode"] == "wal" and snap["database"]["size_bytes"] > 0
    assert snap["database"]["pending_migrations"] == []
    assert snap["registry"]["models"] == len(seeded.registry)
    assert snap["registry"]["active"] == len(seeded.registry.all(active=True))
    assert snap["registry"]["by_vendor"]["Google"]["active"] == 3
    assert snap["circuits"] == [] and snap["events"][0]["kind"] == "model.registered"


def test_usage_latency_and_circuits(busy):
    """Usage today and all time (requests and attempts), p50/p95 by model, open circuits."""
    snap = health.snapshot(busy)
    for period in ("today", "all_time"):
        usage = snap["usage"][period]
        assert (usage["requests"], usage["failures"], usage["attempts"]) == (21, 1, 21)
        assert usage["success_rate"] == pytest.approx(20 / 21)
        assert usage["cost"] == pytest.approx(20 * 120e-6)  # simulated cost kept apart
        assert (usage["simulated_requests"], usage["simulated_cost"]) == (1, 120e-6)
    [gpt] = [r for r in snap["usage"]["latency_by_model"] if r["model"] == "gpt-4o"]
    # health reads the histogram percentiles (within 2.5%), not an exact sort of every call
    assert (gpt["p50_latency_ms"], gpt["p95_latency_ms"]) == pytest.approx(
        (100.0, 190.0), rel=0.025
    )
    states = {c["model_id"]: c["state"] for c in snap["circuits"]}
    assert states == {"gemini-2.5-pro": "open", "gemini-2.5-flash": "half_open"}
    assert snap["health"]["problems"] == [
        "circuit open: gemini-2.5-pro",
        "circuit half-open, probing: gemini-2.5-flash",
    ]


def test_today_starts_at_midnight_utc(busy):
    """Seen from tomorrow, today has no calls yet while all time still counts them."""
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    snap = health.snapshot(busy, now=tomorrow)
    assert snap["usage"]["today"]["requests"] == 0
    assert snap["usage"]["all_time"]["requests"] == 21


def test_low_success_rate_degrades_health(seeded, log_row):
    """Today's request success rate under 90% over enough requests is a health problem."""
    for ok in [True] * 5 + [False] * 5:
        log_row(seeded, "gpt-4o", ok=ok, price=None, provider="openai")
    snap = health.snapshot(seeded)
    assert snap["health"]["problems"] == ["today's request success rate is 50% (5 failed requests)"]
    assert snap["usage"]["today"]["cost"] is None  # unpriced, never $0


def test_provider_keys_by_name_never_value(monkeypatch):
    """Configured keys are listed by variable name; their values never appear."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value-123456")
    monkeypatch.setenv("GOOGLE_API_KEY", "AIza-secret-value-123456")
    found = health.providers()
    assert "secret-value" not in repr(found)
    keys = {k["provider"]: k for k in found["keys"]}
    assert keys["openai"] == {"provider": "openai", "variable": "OPENAI_API_KEY", "set": True}
    assert keys["gemini"]["variable"] == "GOOGLE_API_KEY" and keys["gemini"]["set"]
    assert not keys["anthropic"]["set"]


@pytest.mark.parametrize("installed", [True, False])
def test_gemini_cli_installed_or_not(monkeypatch, tmp_path, installed):
    """Health says whether the gemini CLI is installed, and where."""
    exe = tmp_path / "gemini"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path if installed else tmp_path / "nothing"))
    assert health.providers()["gemini_cli"] == {
        "installed": installed,
        "path": str(exe) if installed else None,
    }
