"""The package surface: import costs nothing, the public names are there."""

from __future__ import annotations

import json
import subprocess
import sys

import ims_kit


def test_import_does_no_io_and_loads_no_heavy_dependency(tmp_path):
    """`import ims_kit` creates no file and imports neither pandas, plotly, streamlit nor sqlite."""
    code = (
        "import sys, json, ims_kit;"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'pandas','plotly','streamlit','sqlite_utils','httpx','httpx2','aiohttp','click','statemachine','opentelemetry','tqdm'})))"
    )
    env = {"IMS_DB": str(tmp_path / "never.db"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == []
    assert not (tmp_path / "never.db").exists()


def test_all_is_sorted_and_every_name_resolves():
    """__all__ is the public API: sorted, and every name in it exists."""
    assert ims_kit.__all__ == sorted(ims_kit.__all__)
    for name in ims_kit.__all__:
        assert getattr(ims_kit, name) is not None
