"""docs/ARCHITECTURE.md is the map: every module on it, its floors those that `make lint`
enforces, and no import cycle anywhere (imports inside functions count)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "ARCHITECTURE.md").read_text()


def _section(name: str) -> str:
    return DOC.split(f"<!-- {name} -->\n")[1].split(f"<!-- /{name} -->")[0]


def _modules_on_disk() -> set[str]:
    found = set()
    for package in ("ims_kit", "app_pages"):
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


def _table() -> dict[str, list[str]]:
    """Module -> the test files its row names."""
    rows = {}
    for line in _section("modules").splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = re.findall(r"`(tests/[^`]+)`", cells[2])
    return rows


def test_every_module_is_on_the_map_and_every_row_is_a_module():
    """A module added, renamed or removed without its row fails here."""
    table = _table()
    assert set(table) == _modules_on_disk()


def test_every_module_names_test_files_that_exist():
    """Each row says where its module is tested, and those files exist."""
    for module, files in _table().items():
        assert files, f"{module} names no test file"
        for name in files:
            assert (ROOT / name).is_file(), f"{module}: {name} does not exist"


def test_the_floors_are_the_ones_make_lint_enforces():
    """The floors table lists, top to bottom, the layers of import-linter's contract."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    [layers] = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    enforced = [sorted(m.strip() for m in layer.split(":")) for layer in layers]
    shown = [
        sorted(re.findall(r"`(\w+)`", line.split("|")[2]))
        for line in _section("floors").splitlines()
        if re.match(r"\| \d", line)
    ]
    assert shown == enforced


def test_no_import_cycles_counting_imports_inside_functions():
    """No two modules import each other, however indirectly (grimp sees every import)."""
    graph = grimp.build_graph("ims_kit", "app_pages")
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            back = graph.find_shortest_chain(importer=imported, imported=module)
            assert back is None, f"cycle: {module} -> {' -> '.join(back)}"
