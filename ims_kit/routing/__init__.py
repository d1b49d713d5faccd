"""Learned routing: score how much a prompt needs the strong model, and prove it on data.

``train_router(rows)`` fits a router on labelled prompts (scikit-learn, the ``routing``
extra); ``Router.score`` needs numpy only; ``default_router()`` is the router shipped in the
package, trained on RouteLLM's GSM8K and MMLU dev sets (docs/ROUTING.md). Importing this
package loads nothing heavy: the names below are loaded on first use.
"""

from __future__ import annotations

__all__ = [
    "Calibration",
    "Router",
    "RouterEvaluation",
    "default_router",
    "load_router",
    "read_jsonl",
    "train_router",
]

_LAZY = {
    "Calibration": "ims_kit.routing.calibration",
    "Router": "ims_kit.routing.router",
    "RouterEvaluation": "ims_kit.routing.evaluation",
    "default_router": "ims_kit.routing.router",
    "load_router": "ims_kit.routing.router",
    "read_jsonl": "ims_kit.routing.data",
    "train_router": "ims_kit.routing.router",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ims_kit.routing' has no attribute {name!r}")
