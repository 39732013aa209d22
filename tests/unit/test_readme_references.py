"""README says which test proves each promise: every test file and test it names exists, so a
renamed or deleted test cannot leave a promise pointing at nothing."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from devstack.settings import ROOT

# `tests/x/test_y.py` or `tests/x/test_y.py::test_z`, as README writes them (in backquotes).
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)(?:::(\w+))?`")


def references(text: str) -> list[tuple[str, str | None]]:
    return [(path, name or None) for path, name in REFERENCE.findall(text)]


def functions_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def test_every_test_readme_names_exists() -> None:
    named = references((ROOT / "README.md").read_text())
    assert len(named) > 20, "README names the tests behind its promises"
    missing = []
    for path, name in named:
        source = ROOT / path
        if not source.is_file():
            missing.append(path)
        elif name is not None and name not in functions_in(source):
            missing.append(f"{path}::{name}")
    assert missing == []


def test_a_reference_to_a_test_is_found_with_or_without_its_name() -> None:
    text = "proven by `tests/unit/a.py` and `tests/integration/b.py::test_c` (not tests/d.py)"
    assert references(text) == [("tests/unit/a.py", None), ("tests/integration/b.py", "test_c")]
