"""Where model data comes from: catalogue files (``data/models.json``, a user's own) and the
genai-prices snapshot. Reading is all-or-nothing: a file with one bad entry is refused whole.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ims_kit.errors import CatalogError, InvalidInputError
from ims_kit.records import ModelSpec

# genai-prices names vendors by provider id.
GENAI_PRICES_PROVIDER = {"Google": "google", "OpenAI": "openai", "Anthropic": "anthropic"}


def seed_path() -> Path:
    """The curated seed catalogue: inside the installed wheel, or ``data/`` of a checkout."""
    packaged = Path(__file__).parent / "_data" / "models.json"
    if packaged.exists():
        return packaged
    return Path(__file__).resolve().parent.parent / "data" / "models.json"


def load(path: str | os.PathLike) -> list[ModelSpec]:
    """Read and validate a catalogue file; raise CatalogError naming the file and the entry."""
    return [spec for spec, _ in read(path)]


def read(path: str | os.PathLike) -> list[tuple[ModelSpec, frozenset[str]]]:
    """Like ``load``, with the fields each entry actually gives (imports merge only those)."""
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise CatalogError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    try:
        data = json.loads(raw)
    except RecursionError:
        raise CatalogError(f"{path}: not a catalogue (JSON nested too deeply)") from None
    except json.JSONDecodeError as exc:
        raise CatalogError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc
    entries = data.get("models") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise CatalogError(f'{path}: expected {{"models": [...]}} or a list of models')
    specs: list[tuple[ModelSpec, frozenset[str]]] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        label = f"entry {index}"
        if isinstance(entry, dict) and isinstance(entry.get("model_id"), str):
            label += f" ({entry['model_id']!r})"
        try:
            spec = ModelSpec.from_dict(entry)
        except (InvalidInputError, TypeError) as exc:
            raise CatalogError(f"{path}: {label}: {exc}") from exc
        if spec.model_id in seen:
            raise CatalogError(
                f"{path}: {label}: duplicate model_id, already given by entry {seen[spec.model_id]}"
            )
        seen[spec.model_id] = index
        specs.append((spec, frozenset(entry)))
    return specs


@dataclass(frozen=True)
class Price:
    """Per-million-token prices for one model, with where they came from."""

    cost_per_mil_in: float
    cost_per_mil_out: float
    source: str


def genai_price(vendor: str, api_model: str) -> Price | None:
    """The genai-prices price of a model at small (first-tier) volumes, or None if unknown."""
    provider_id = GENAI_PRICES_PROVIDER.get(vendor)
    if provider_id is None:
        return None
    return _price(api_model, provider_id)


def _price(model_ref: str, provider_id: str) -> Price | None:
    import genai_prices
    from genai_prices import Usage, calc_price

    try:
        # 1,000 tokens, scaled: stays below long-context tiers (e.g. Gemini Pro above 200k).
        price_in = calc_price(Usage(input_tokens=1000), model_ref, provider_id=provider_id)
        price_out = calc_price(Usage(output_tokens=1000), model_ref, provider_id=provider_id)
    except LookupError:
        return None
    return Price(
        round(float(price_in.total_price) * 1000, 6),
        round(float(price_out.total_price) * 1000, 6),
        f"genai-prices {genai_prices.__version__} ({provider_id})",
    )


def genai_prices_models() -> list[ModelSpec]:
    """Every chat model genai-prices knows (input and output priced), as inactive specs.

    Ids are ``<provider>/<model>``; the context window is genai-prices' where it has one,
    else a conservative 8,192. Quality is unknown (None), so ``performance`` ranks them last.
    """
    import genai_prices
    from genai_prices.data_snapshot import get_snapshot

    vendor_of = {v: k for k, v in GENAI_PRICES_PROVIDER.items()}
    adapter = {"google": "gemini", "openai": "openai", "anthropic": "anthropic"}
    specs = []
    for provider in get_snapshot().providers:
        for model in provider.models:
            price = _price(model.id, provider.id)
            if price is None or not price.cost_per_mil_in or not price.cost_per_mil_out:
                continue  # embeddings, audio, images: not chat models
            window = model.context_window if (model.context_window or 0) > 0 else 8_192
            specs.append(
                ModelSpec(
                    model_id=f"{provider.id}/{model.id}",
                    vendor=vendor_of.get(provider.id, provider.name),
                    provider=adapter.get(provider.id, "openai_compatible"),
                    api_model=model.id,
                    display_name=model.name or model.id,
                    context_window=int(window),
                    max_output_tokens=min(4_096, int(window)),
                    cost_per_mil_in=price.cost_per_mil_in,
                    cost_per_mil_out=price.cost_per_mil_out,
                    active=False,
                    price_source=f"genai-prices {genai_prices.__version__} ({provider.id})",
                )
            )
    return specs
