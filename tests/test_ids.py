"""Row ids: unique within a process (threads), across processes (forks too), UUID-shaped."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from ims_kit.ids import new_id


def test_ids_are_32_hex_characters_and_unique_across_threads():
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda _: new_id(), range(20_000)))
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids[:100])


def test_ids_differ_across_processes_and_in_a_forked_child():
    code = "from ims_kit.ids import new_id; print(new_id())"
    others = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True).stdout.strip() for _ in range(3)}  # fmt: skip
    mine = new_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its ids must not repeat the parent's
        os.write(write, new_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    assert len(others | {mine, child}) == 5
    assert child[:16] != mine[:16]
