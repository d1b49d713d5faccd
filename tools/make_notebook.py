"""Write a notebook from a plain-text source: cells separated by lines '# %% [markdown]' / '# %%'.

Notebooks are kept as .ipynb (what nbmake runs and Jupyter opens), without outputs; this script
is how they are written, so that their source reads like a script in review.
"""

import json
import sys
from pathlib import Path


def cells_from(text: str) -> list[dict]:
    cells, kind, lines = [], None, []

    def flush():
        if kind is None:
            return
        body = "\n".join(lines).strip("\n")
        if kind == "markdown":
            body = "\n".join(
                line[2:] if line.startswith("# ") else line.lstrip("#")
                for line in body.splitlines()
            )
        source = body.splitlines(keepends=True)
        cell = {"cell_type": kind, "metadata": {}, "source": source}
        if kind == "code":
            cell |= {"execution_count": None, "outputs": []}
        cells.append(cell)

    for line in text.splitlines():
        if line.startswith("# %%"):
            flush()
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        else:
            lines.append(line)
    flush()
    return cells


def main(src: str, dest: str) -> None:
    nb = {
        "cells": cells_from(Path(src).read_text()),
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    for i, cell in enumerate(nb["cells"]):
        cell["id"] = f"c{i:02d}"
    Path(dest).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:3])
