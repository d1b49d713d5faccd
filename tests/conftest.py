"""Shared fixtures: a temporary database for every test, a Kit on it, a seeded registry."""

from __future__ import annotations

import pytest
import stamina
import vendor_server as vs

import ims_kit


@pytest.fixture(autouse=True)
def _isolated_db(tmp_path, monkeypatch):
    """No test ever touches the user's database: IMS_DB points at a fresh temporary file."""
    path = tmp_path / "ims.db"
    monkeypatch.setenv("IMS_DB", str(path))
    for var in (
        "IMS_STRATEGY",
        "IMS_MIN_CONTEXT",
        "IMS_STORE_TEXT",
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "GEMINI_API_KEY",
        "GOOGLE_API_KEY",
        "OPENAI_BASE_URL",
        "ANTHROPIC_BASE_URL",
        "GEMINI_BASE_URL",
        "GOOGLE_GEMINI_BASE_URL",
    ):
        monkeypatch.delenv(var, raising=False)
    return path


@pytest.fixture(autouse=True)
def _no_real_backoff():
    """stamina's testing mode: every wait is zero; our own attempt limits still apply."""
    with stamina.set_testing(True, attempts=100, cap=True):
        yield


class FakeClock:
    """An injectable clock (epoch seconds) that only moves when a test says so."""

    def __init__(self, start: float = 1_800_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock():
    """A fake clock starting at a fixed instant."""
    return FakeClock()


@pytest.fixture
def vendor():
    """A loopback server speaking the OpenAI, Anthropic and Gemini wire formats."""
    with vs.running_server() as server:
        yield server


@pytest.fixture
def db_path(_isolated_db):
    """The temporary database file of this test."""
    return _isolated_db


@pytest.fixture
def kit(db_path):
    """A Kit on an empty (migrated, unseeded) temporary database."""
    with ims_kit.open(db_path) as k:
        yield k


@pytest.fixture
def seeded(kit):
    """A Kit whose registry holds the curated seed catalogue."""
    kit.registry.seed()
    return kit
