"""Each notebook runs against its own fresh temporary database (nbmake kernels inherit IMS_DB)."""

import os
import tempfile
from pathlib import Path


def pytest_runtest_setup(item):
    if item.path.suffix == ".ipynb":
        folder = Path(tempfile.mkdtemp(prefix="ims-nb-"))
        os.environ["IMS_DB"] = str(folder / f"{item.path.stem}.db")
