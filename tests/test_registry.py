"""The registry: seeding, registering, updating, filtering, events, price refresh."""

from __future__ import annotations

import dataclasses
import json
import sqlite3

import pytest

import ims_kit
from ims_kit.errors import CatalogError, DuplicateModelError, InvalidInputError, UnknownModelError
from ims_kit.records import ModelSpec

ACME = ModelSpec(
    model_id="acme-1",
    vendor="Acme",
    provider="openai_compatible",
    context_window=32_000,
    cost_per_mil_in=1.0,
    cost_per_mil_out=2.0,
    capabilities=("tools",),
    quality=50,
    base_url="http://127.0.0.1:9/v1",
)


def test_seed_is_idempotent(kit):
    """Seeding twice adds every model once and then skips them all."""
    first = kit.registry.seed()
    second = kit.registry.seed()
    assert len(first.added) >= 24 and not first.skipped
    assert not second.added and sorted(second.skipped) == sorted(first.added)
    assert len(kit.registry) == len(first.added)


def test_seed_emits_one_registered_event_per_model(kit):
    """model.registered is appended for each added model, not for skipped ones."""
    added = kit.registry.seed().added
    kit.registry.seed()
    assert kit.events.count("model.registered") == len(added)


def test_get_returns_the_spec_and_counts_a_query(seeded):
    """get() returns the stored model and appends model.queried."""
    spec = seeded.registry.get("gpt-4o-mini")
    assert spec.vendor == "OpenAI" and spec.provider == "openai"
    assert seeded.events.count_by_subject("model.queried") == {"gpt-4o-mini": 1}


def test_unknown_model_is_a_key_error_with_a_clear_message(seeded):
    """An unknown id raises UnknownModelError, which is also a KeyError."""
    with pytest.raises(UnknownModelError) as err:
        seeded.registry.get("gpt-7")
    assert isinstance(err.value, KeyError)
    assert "'gpt-7'" in str(err.value) and not str(err.value).startswith('"')


@pytest.mark.parametrize(
    "model_id",
    ["it's", 'a "quoted" id', "x'; DROP TABLE models; --", "modèle-日本語-🚀", "   padded  "],
)
def test_ids_are_stored_exactly_as_given(kit, model_id):
    """Quotes, unicode and SQL-looking text round-trip unchanged and break nothing."""
    kit.registry.register(dataclasses.replace(ACME, model_id=model_id))
    assert kit.registry.get(model_id).model_id == model_id
    assert len(kit.registry) == 1


def test_register_refuses_a_duplicate_unless_replacing(kit):
    """An existing id is an error; replace=True updates it."""
    kit.registry.register(ACME)
    with pytest.raises(DuplicateModelError, match="acme-1"):
        kit.registry.register(ACME)
    kit.registry.register(dataclasses.replace(ACME, quality=60), replace=True)
    assert kit.registry.get("acme-1").quality == 60


def test_update_changes_fields_and_records_the_change(kit):
    """update() validates, stores and emits model.updated with old and new values."""
    kit.registry.register(ACME)
    kit.registry.update("acme-1", cost_per_mil_in=0.5, capabilities=["tools", "vision"])
    spec = kit.registry.lookup("acme-1")
    assert spec.cost_per_mil_in == 0.5 and spec.capabilities == ("tools", "vision")
    event = kit.events.recent(kind="model.updated")[0]
    assert event.subject == "acme-1" and event.payload["changes"]["cost_per_mil_in"] == [1.0, 0.5]


@pytest.mark.parametrize(
    "changes",
    [
        {"context_window": -1},
        {"cost_per_mil_out": -2},
        {"colour": "red"},
        {"model_id": "other"},
        {"capabilities": ["telepathy"]},
    ],
)
def test_update_rejects_bad_values_and_changes_nothing(kit, changes):
    """A bad update raises InvalidInputError and leaves the row as it was."""
    kit.registry.register(ACME)
    with pytest.raises(InvalidInputError):
        kit.registry.update("acme-1", **changes)
    assert kit.registry.lookup("acme-1") == ACME


def test_update_of_unknown_model(kit):
    """Updating an id that does not exist raises UnknownModelError."""
    with pytest.raises(UnknownModelError):
        kit.registry.update("ghost", quality=1)


def test_filter_by_vendor_context_capability_and_price(seeded):
    """Each criterion keeps exactly the matching active models."""
    reg = seeded.registry
    google = reg.filter(vendor="Google")
    assert google and all(m.vendor == "Google" and m.active for m in google)
    assert reg.filter(vendor="google").ids() == google.ids()
    big = reg.filter(min_context_window=1_000_000)
    assert big and all(m.context_window >= 1_000_000 for m in big)
    vision = reg.filter(capabilities=["vision", "tools"])
    assert vision and all({"vision", "tools"} <= set(m.capabilities) for m in vision)
    cheap = reg.filter(max_cost_per_mil_in=0.5)
    assert cheap and all(m.cost_per_mil_in is not None and m.cost_per_mil_in <= 0.5 for m in cheap)
    everything = reg.filter(active=None)
    assert len(everything) == len(reg) > len(reg.filter())


def test_filter_emits_filter_executed_with_its_criteria(seeded):
    """Each filter appends filter.executed with the criteria and the count found."""
    found = seeded.registry.filter(vendor="OpenAI", min_context_window=100_000)
    event = seeded.events.recent(kind="filter.executed")[0]
    assert event.payload == {
        "criteria": {"vendor": "OpenAI", "min_context_window": 100_000, "active": True},
        "count": len(found),
    }


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"vendor": "Gogle"}, "known: Anthropic, Google"),
        ({"min_context_window": -1}, "non-negative"),
        ({"min_context_window": "big"}, "non-negative"),
        ({"capabilities": ["telepathy"]}, "telepathy"),
        ({"max_cost_per_mil_in": -1}, "non-negative"),
    ],
)
def test_filter_bad_criteria_are_clear_errors(seeded, kwargs, match):
    """Unknown vendors or capabilities and bad numbers name the value and the accepted ones."""
    with pytest.raises(InvalidInputError, match=match):
        seeded.registry.filter(**kwargs)


def test_deactivate_hides_a_model_from_default_filters(seeded):
    """A deactivated model stays registered but is no longer listed as active."""
    seeded.registry.deactivate("gpt-4o")
    assert "gpt-4o" not in seeded.registry.filter().ids()
    assert "gpt-4o" in seeded.registry.filter(active=None).ids()
    seeded.registry.activate("gpt-4o")
    assert "gpt-4o" in seeded.registry.filter().ids()


def test_import_file_adds_and_updates_all_or_nothing(kit, tmp_path):
    """A good file adds and updates; a file with one bad entry changes nothing at all."""
    kit.registry.register(ACME)
    good = tmp_path / "mine.json"
    good.write_text(
        json.dumps(
            {
                "models": [
                    ACME.to_dict() | {"quality": 70},
                    ACME.to_dict() | {"model_id": "acme-2"},
                ]
            }
        )
    )
    result = kit.registry.import_file(good)
    assert result.added == ("acme-2",) and result.updated == ("acme-1",)
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "models": [
                    ACME.to_dict() | {"model_id": "acme-3"},
                    ACME.to_dict() | {"model_id": "acme-4", "context_window": -1},
                ]
            }
        )
    )
    with pytest.raises(CatalogError, match="bad.json.*entry 1"):
        kit.registry.import_file(bad)
    assert "acme-3" not in kit.registry and len(kit.registry) == 2


def test_to_frame_has_one_row_per_model(seeded):
    """The registry converts to a DataFrame for notebooks."""
    frame = seeded.registry.to_frame()
    assert len(frame) == len(seeded.registry) and "cost_per_mil_in" in frame.columns


def test_unpriced_models_keep_null_prices(kit):
    """A model without prices is stored with NULL, never 0."""
    kit.registry.register(dataclasses.replace(ACME, cost_per_mil_in=None, cost_per_mil_out=None))
    with sqlite3.connect(kit.path) as conn:
        row = conn.execute("SELECT cost_per_mil_in, cost_per_mil_out FROM models").fetchone()
    assert row == (None, None)
    assert "unpriced" in kit.registry.all()._repr_html_()


def test_refresh_prices_updates_stale_prices_and_keeps_unknown_ones(seeded):
    """A wrong price is corrected from genai-prices; models it does not know keep NULL."""
    seeded.registry.update("gpt-4o-mini", cost_per_mil_in=99.0)
    seeded.registry.register(dataclasses.replace(ACME, cost_per_mil_in=None, cost_per_mil_out=None))
    report = seeded.registry.refresh_prices()
    changed = {c.model_id: c for c in report.changed}
    assert changed["gpt-4o-mini"].old[0] == 99.0
    assert seeded.registry.lookup("gpt-4o-mini").cost_per_mil_in == changed["gpt-4o-mini"].new[0]
    assert "acme-1" in report.unknown
    assert seeded.registry.lookup("acme-1").cost_per_mil_in is None
    assert not seeded.registry.refresh_prices().changed


def test_metrics_have_the_seed_keys(seeded):
    """kit.metrics() reports registry size, queries and per-vendor and per-model counts."""
    seeded.registry.get("gpt-4o")
    seeded.registry.get("gpt-4o")
    seeded.registry.filter(vendor="Google")
    figures = seeded.metrics()
    assert figures["total_models_registered"] == len(seeded.registry)
    assert figures["total_model_queries"] == 2 and figures["model_queries:gpt-4o"] == 2
    assert figures["total_filter_queries"] == 1
    assert sum(v for k, v in figures.items() if k.startswith("vendor_models:")) == len(
        seeded.registry
    )


def test_subscribers_hear_registry_events(kit):
    """In-process subscribers are called for each event; a failing one does not break the call."""
    heard = []
    kit.events.subscribe(lambda e: heard.append((e.kind, e.subject)))
    kit.events.subscribe(lambda e: 1 / 0)
    kit.registry.register(ACME)
    assert heard == [("model.registered", "acme-1")]


def test_open_uses_ims_db(db_path):
    """ims_kit.open() without a path opens IMS_DB."""
    with ims_kit.open() as kit:
        assert kit.path == str(db_path)


def test_import_changes_only_the_fields_an_entry_gives(seeded, tmp_path):
    """Re-importing a known model with a new price keeps its quality, flags and URL."""
    before = seeded.registry.lookup("llama-3.1-8b")
    path = tmp_path / "price.json"
    path.write_text(
        json.dumps(
            [
                {
                    "model_id": "llama-3.1-8b",
                    "vendor": "Meta",
                    "provider": "openai_compatible",
                    "context_window": 131072,
                    "cost_per_mil_in": 0.02,
                    "cost_per_mil_out": 0.05,
                }
            ]
        )
    )
    assert seeded.registry.import_file(path).updated == ("llama-3.1-8b",)
    after = seeded.registry.lookup("llama-3.1-8b")
    assert (after.cost_per_mil_in, after.cost_per_mil_out) == (0.02, 0.05)
    assert (after.quality, after.active, after.base_url, after.capabilities) == (
        before.quality,
        before.active,
        before.base_url,
        before.capabilities,
    )
