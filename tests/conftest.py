"""Shared fixtures: a temporary database for every test, a Kit on it, a seeded registry."""

from __future__ import annotations

import pytest

import ims_kit


@pytest.fixture(autouse=True)
def _isolated_db(tmp_path, monkeypatch):
    """No test ever touches the user's database: IMS_DB points at a fresh temporary file."""
    path = tmp_path / "ims.db"
    monkeypatch.setenv("IMS_DB", str(path))
    for var in ("IMS_STRATEGY", "IMS_MIN_CONTEXT", "IMS_STORE_TEXT"):
        monkeypatch.delenv(var, raising=False)
    return path


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
