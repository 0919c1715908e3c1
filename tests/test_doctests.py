"""The `>>>` examples in lab/ and widgets/ docstrings are tests too.

Modules are found by walking the files, not the packages: `pkgutil.walk_packages` skips folders
without an `__init__.py` (lab/engine, lab/export), whose examples then never ran. Only modules
that hold examples are parametrised, so every case here can fail."""
import doctest
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SKIP = {"lab.__main__"}  # runs the CLI when imported


def module_names() -> list[str]:
    """Every module under lab/ and widgets/, named from its file (namespace folders too)."""
    names = []
    for package in ("lab", "widgets"):
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            if "__pycache__" in parts:
                continue
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            if name not in SKIP:
                names.append(name)
    return names


def examples(name: str) -> list[doctest.DocTest]:
    """The module's docstring tests that hold at least one example."""
    module = importlib.import_module(name)
    return [t for t in doctest.DocTestFinder().find(module) if t.examples]


WITH_EXAMPLES = [name for name in module_names() if examples(name)]


def test_the_walk_finds_modules_in_folders_without_init():
    assert {"lab.engine.precision", "lab.export.gguf", "lab.data.starters.flaws"} <= set(WITH_EXAMPLES)
    assert "lab.engine.llama" in module_names() and "widgets.show" in WITH_EXAMPLES


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
