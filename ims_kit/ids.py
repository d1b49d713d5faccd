"""Unique ids for rows (call, request, reservation): 32 hex characters like a UUID4's.

A random 16-hex prefix drawn once per process, then a counter: unique across processes (the
prefix) and within one (the counter), without a system call per id; ``uuid4()`` cost a
``getrandom`` call each, which under load waited for the GIL twice per call.
"""

from __future__ import annotations

import itertools
import os
import threading

_lock = threading.Lock()
_process: tuple[int, str, itertools.count] | None = None


def new_id() -> str:
    """A fresh 32-hex-character id."""
    global _process
    pid = os.getpid()
    current = _process
    if current is None or current[0] != pid:  # first use, or a forked child
        with _lock:
            if _process is None or _process[0] != pid:
                _process = (pid, os.urandom(8).hex(), itertools.count())
            current = _process
    return f"{current[1]}{next(current[2]):016x}"
