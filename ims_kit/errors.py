"""The one error hierarchy of ims_kit: every failure a user can act on is an ``ImsError``."""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    """What went wrong with a model call, as recovery needs to know it."""

    RATE_LIMIT = "RATE_LIMIT"
    TIMEOUT = "TIMEOUT"
    OVERLOAD = "OVERLOAD"
    CONTEXT_OVERFLOW = "CONTEXT_OVERFLOW"
    INVALID_REQUEST = "INVALID_REQUEST"
    AUTHENTICATION = "AUTHENTICATION"
    UNKNOWN = "UNKNOWN"


class ImsError(Exception):
    """Base class of every error ims_kit raises on purpose."""


class InvalidInputError(ImsError, ValueError):
    """An argument, option or field value was not acceptable; the message says which and why."""


class CatalogError(InvalidInputError):
    """A model catalogue file (``models.json`` or a user's import file) was refused as a whole."""


class UnknownModelError(ImsError, KeyError):
    """No model with this id is registered."""

    def __init__(self, model_id: str, known: int | None = None):
        self.model_id = model_id
        hint = (
            "; `ims models --all` lists them" if known else "; run `ims init` to seed the registry"
        )
        super().__init__(f"unknown model id {model_id!r}{hint}")

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0])


class DuplicateModelError(InvalidInputError):
    """``register`` was asked to add a model id that already exists."""


class StoreError(ImsError):
    """The SQLite file could not be opened or used (not a database, unwritable, ...)."""


class MissingKeyError(ImsError):
    """A real provider was chosen but its API key is not in the environment."""

    def __init__(self, provider: str, variable: str):
        self.provider = provider
        self.variable = variable
        super().__init__(
            f"no API key for provider {provider!r}: set the environment variable {variable}"
            " (or use --provider simulated to work offline)"
        )
