"""The ``ims`` command. Errors print one line on stderr and exit non-zero, never a traceback.

Each module here adds its commands to the one group in ``base``.
"""

from __future__ import annotations

import sys

from ims_kit.cli import (  # noqa: F401
    batch,
    budget,
    calls,
    chat,
    export,
    gemini,
    registry,
    route,
    simulate,
    status,
    workflows,
)
from ims_kit.cli.base import cli

__all__ = ["cli", "main"]


def main() -> None:
    """Entry point of the ``ims`` console script."""
    try:
        cli(prog_name="ims")
    except KeyboardInterrupt:
        sys.exit(130)
