"""Each notebook runs against its own fresh temporary database (nbmake kernels inherit IMS_DB).

``IMS_NOTEBOOK_OFFLINE=1`` tells notebook 05 to skip every cell that would reach a real
provider or a local server, even when the environment holds keys: the suite stays offline.
"""

import os
import tempfile
from pathlib import Path


def pytest_runtest_setup(item):
    if item.path.suffix == ".ipynb":
        folder = Path(tempfile.mkdtemp(prefix="ims-nb-"))
        os.environ["IMS_DB"] = str(folder / f"{item.path.stem}.db")
        os.environ["IMS_NOTEBOOK_OFFLINE"] = "1"
