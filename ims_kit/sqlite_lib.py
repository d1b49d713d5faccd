"""sqlite-utils, imported without pandas and numpy.

sqlite-utils imports pandas and numpy at import time when they are installed, only to map
DataFrame column types, which ims_kit never inserts: that would cost every ``ims`` command
and every call-making process about 80 MB and 0.3 s. They are hidden during that one import
(not when the caller has already imported them), and load normally later when a frame or
chart asks for them.
"""

from __future__ import annotations

import sys
import threading

_lock = threading.Lock()


def sqlite_utils():
    """The sqlite_utils module (imported once, without pandas and numpy)."""
    module = sys.modules.get("sqlite_utils")
    if module is not None:
        return module
    with _lock:  # one thread hides pandas at a time; a second waits for the import
        if "sqlite_utils" not in sys.modules:
            hidden = [name for name in ("pandas", "numpy") if name not in sys.modules]
            for name in hidden:
                sys.modules[name] = None  # type: ignore[assignment]  # makes `import name` fail
            try:
                import sqlite_utils as module
            finally:
                for name in hidden:
                    if sys.modules.get(name) is None:
                        del sys.modules[name]
    return sys.modules["sqlite_utils"]
