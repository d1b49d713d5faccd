"""ims_kit: choose, call and watch LLM models from Python, on one SQLite file.

Importing the package does no I/O and loads no heavy dependency: ``open``, ``Kit`` and
the workflow names (which need python-statemachine) are loaded on first use.
"""

from ims_kit.errors import (
    AllModelsFailed,
    CatalogError,
    DuplicateModelError,
    ErrorKind,
    ImsError,
    InvalidInputError,
    InvalidOutputError,
    InvalidTransition,
    MissingKeyError,
    NoModelAvailable,
    ProviderError,
    StoreError,
    StreamInterrupted,
    UnknownModelError,
    UnknownWorkflowError,
    WorkflowError,
)
from ims_kit.records import Answer, Attempt, Completion, ModelList, ModelSpec

__version__ = "0.1.0"

__all__ = [
    "AStream",
    "AllModelsFailed",
    "Answer",
    "Attempt",
    "CatalogError",
    "Completion",
    "DuplicateModelError",
    "ErrorKind",
    "ImsError",
    "InvalidInputError",
    "InvalidOutputError",
    "InvalidTransition",
    "Kit",
    "MissingKeyError",
    "ModelList",
    "ModelSpec",
    "NoModelAvailable",
    "ProviderError",
    "Recommendation",
    "RecoveryPolicy",
    "StoreError",
    "Stream",
    "StreamInterrupted",
    "TaskResult",
    "Transition",
    "TransitionEvent",
    "UnknownModelError",
    "UnknownWorkflowError",
    "Workflow",
    "WorkflowError",
    "WorkflowState",
    "open",
]

_LAZY = {
    "AStream": "ims_kit.streams",
    "Kit": "ims_kit.kit",
    "Recommendation": "ims_kit.selector",
    "RecoveryPolicy": "ims_kit.recovery",
    "Stream": "ims_kit.streams",
    "open": "ims_kit.kit",
    "TaskResult": "ims_kit.tasks",
    "Transition": "ims_kit.workflow",
    "TransitionEvent": "ims_kit.workflow",
    "Workflow": "ims_kit.workflow",
    "WorkflowState": "ims_kit.workflow",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ims_kit' has no attribute {name!r}")
