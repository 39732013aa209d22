"""Markers by directory: a test under tests/integration needs the real stack, one under
tests/compose a Docker engine, whatever its file says, so a new file cannot forget the marker
and silently need Dapr or Docker in `make unit`."""

from __future__ import annotations

from pathlib import Path

import pytest

_REAL_STACK_DIRS = {"integration": pytest.mark.integration, "compose": pytest.mark.compose}
_TESTS = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        top = item.path.relative_to(_TESTS).parts[0]
        if top in _REAL_STACK_DIRS:
            item.add_marker(_REAL_STACK_DIRS[top])
