"""Kit: the facade that wires the stores together; what ``ims_kit.open()`` returns."""

from __future__ import annotations

import os
import uuid
from typing import Any

from ims_kit.db import open_db
from ims_kit.events import EventLog
from ims_kit.registry import Registry


class Kit:
    """One open database and the parts that work on it (registry, events, ...)."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.db = open_db(path)
        self.session_id = uuid.uuid4().hex[:12]
        self.events = EventLog(self.db)
        self.registry = Registry(self.db, self.events)

    @property
    def path(self) -> str:
        """The database file this kit works on."""
        return self.db.conn.execute("PRAGMA database_list").fetchone()[2]

    def metrics(self) -> dict[str, Any]:
        """The seed's ``/metrics`` figures: registry size and query counts, per vendor and model."""
        figures: dict[str, Any] = {
            "total_models_registered": len(self.registry),
            "total_model_queries": self.events.count("model.queried"),
            "total_filter_queries": self.events.count("filter.executed"),
        }
        for vendor, n in self.registry.count_by_vendor().items():
            figures[f"vendor_models:{vendor}"] = n
        for model_id, n in self.events.count_by_subject("model.queried").items():
            figures[f"model_queries:{model_id}"] = n
        return figures

    def close(self) -> None:
        """Close the database connection."""
        self.db.close()

    def __enter__(self) -> Kit:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Kit {self.path} session={self.session_id}>"


def open(path: str | os.PathLike | None = None) -> Kit:
    """Open the ims_kit database (``IMS_DB`` or the per-user default) and return a Kit."""
    return Kit(path)
