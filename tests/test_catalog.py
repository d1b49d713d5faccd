"""Catalogue files: the curated seed and the user's own import files, validated all or nothing."""

from __future__ import annotations

import json

import pytest

from ims_kit import catalog
from ims_kit.errors import CatalogError
from ims_kit.records import CAPABILITIES, PROVIDERS

REQUIRED = {
    "Google": [
        "gemini-2.0-flash-exp",
        "gemini-2.5-flash",
        "gemini-2.5-flash-lite",
        "gemini-2.5-pro",
        "gemini-1.5-flash",
        "gemini-1.5-pro",
    ],
    "OpenAI": ["gpt-4o", "gpt-4o-mini", "gpt-4-turbo", "gpt-3.5-turbo", "o1-preview", "o1-mini"],
    "Anthropic": [
        "claude-3-5-sonnet",
        "claude-3-5-haiku",
        "claude-3-opus",
        "claude-3-sonnet",
        "claude-3-haiku",
    ],
    "Meta": ["llama-3.1-405b", "llama-3.1-70b", "llama-3.1-8b"],
}

GOOD = {
    "model_id": "my-model",
    "vendor": "Acme",
    "provider": "openai_compatible",
    "context_window": 8192,
    "max_output_tokens": 1024,
    "cost_per_mil_in": 0.1,
    "cost_per_mil_out": 0.2,
}


@pytest.fixture(scope="module")
def seed():
    return catalog.load(catalog.seed_path())


def test_seed_has_at_least_24_models_with_every_field(seed):
    """The curated catalogue is big enough and complete for every row."""
    assert len(seed) >= 24
    for m in seed:
        assert m.display_name and m.api_model and m.provider in PROVIDERS
        assert m.context_window > 0 and m.max_output_tokens > 0
        assert set(m.capabilities) <= set(CAPABILITIES)
        assert m.quality is not None and 0 <= m.quality <= 100 and m.quality_source
        assert m.price_source and m.as_of


@pytest.mark.parametrize("vendor", sorted(REQUIRED))
def test_seed_contains_every_model_the_user_named(seed, vendor):
    """Every model of the user's seed document is in the catalogue, under its vendor."""
    by_id = {m.model_id: m for m in seed}
    for model_id in REQUIRED[vendor]:
        assert model_id in by_id, model_id
        assert by_id[model_id].vendor == vendor


def test_seed_llama_rows_are_local_and_inactive(seed):
    """Meta Llama runs on a local OpenAI-compatible server and is off until turned on."""
    llamas = [m for m in seed if m.vendor == "Meta"]
    assert llamas and all(not m.active and m.provider == "openai_compatible" for m in llamas)
    assert all(m.base_url and m.base_url.endswith("/v1") for m in llamas)


def test_seed_prices_are_never_zero_and_name_their_source(seed):
    """Unknown prices are null ("unpriced"), known ones are positive and sourced."""
    for m in seed:
        for price in (m.cost_per_mil_in, m.cost_per_mil_out):
            assert price is None or price > 0, m.model_id
        if m.priced and m.vendor != "Meta":
            assert m.price_source, m.model_id


def test_seed_prices_agree_with_genai_prices_where_it_names_them(seed):
    """Rows that cite genai-prices carry its price for that model."""
    cited = [m for m in seed if m.price_source.startswith("genai-prices")]
    assert len(cited) >= 12
    for m in cited:
        price = catalog.genai_price(m.vendor, m.api_model)
        assert price is not None, m.model_id
        assert (price.cost_per_mil_in, price.cost_per_mil_out) == pytest.approx(
            (m.cost_per_mil_in, m.cost_per_mil_out)
        ), m.model_id


def _write(tmp_path, content, name="models.json"):
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


BAD_FILES = {
    "truncated": ('{"models": [{"model_id": "a", "vendor": "X"', "not valid JSON"),
    "not json": ("model_id,vendor\na,b\n", "not valid JSON"),
    "wrong top level": ('"just a string"', "expected"),
    "string context window": ({"models": [GOOD | {"context_window": "8k"}]}, "context_window"),
    "bool context window": ({"models": [GOOD | {"context_window": True}]}, "context_window"),
    "negative context window": ({"models": [GOOD | {"context_window": -5}]}, "context_window"),
    "negative price": ({"models": [GOOD | {"cost_per_mil_in": -0.1}]}, "cost_per_mil_in"),
    "string price": ({"models": [GOOD | {"cost_per_mil_out": "cheap"}]}, "cost_per_mil_out"),
    "missing vendor": ({"models": [{k: v for k, v in GOOD.items() if k != "vendor"}]}, "vendor"),
    "unknown field": ({"models": [GOOD | {"colour": "red"}]}, "colour"),
    "unknown provider": ({"models": [GOOD | {"provider": "carrier-pigeon"}]}, "provider"),
    "unknown capability": ({"models": [GOOD | {"capabilities": ["telepathy"]}]}, "telepathy"),
    "quality out of range": ({"models": [GOOD | {"quality": 140}]}, "quality"),
    "entry not an object": ({"models": [GOOD, 42]}, "entry 1"),
    "duplicate ids": ({"models": [GOOD, GOOD | {"vendor": "Other"}]}, "duplicate"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_catalogue_is_refused_naming_file_and_entry(tmp_path, case):
    """Each kind of broken file raises CatalogError naming the file and what is wrong."""
    content, expected = BAD_FILES[case]
    path = _write(tmp_path, content, name="mine.json")
    with pytest.raises(CatalogError) as err:
        catalog.load(path)
    assert "mine.json" in str(err.value)
    assert expected in str(err.value)


def test_error_names_the_offending_entry_by_index_and_id(tmp_path):
    """The message points at the entry so the user can find it."""
    path = _write(
        tmp_path, {"models": [GOOD, GOOD | {"model_id": "bad one", "cost_per_mil_in": -1}]}
    )
    with pytest.raises(CatalogError, match=r"entry 1 \('bad one'\).*cost_per_mil_in"):
        catalog.load(path)


def test_missing_file_is_a_catalog_error(tmp_path):
    """A path that does not exist is a clear error, not a traceback."""
    with pytest.raises(CatalogError, match="cannot read"):
        catalog.load(tmp_path / "nope.json")


def test_a_bare_list_is_accepted(tmp_path):
    """A user's file may be just the list of models."""
    assert [m.model_id for m in catalog.load(_write(tmp_path, [GOOD]))] == ["my-model"]


def test_genai_price_unknown_model_is_none():
    """A model genai-prices does not know has no price rather than a made-up one."""
    assert catalog.genai_price("OpenAI", "gpt-does-not-exist") is None
    assert catalog.genai_price("Acme", "anything") is None
