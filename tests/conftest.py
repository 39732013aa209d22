"""Markers by directory: a test under tests/integration needs the real stack, one under
tests/compose a Docker engine, whatever its file says, so a new file cannot forget the marker
and silently need Dapr or Docker in `make unit`. A test under tests/browser drives Debian's
chromium (`make tools`; `make unit` installs it too): marked `browser`, so `-m "not browser"`
leaves them out. A browser test that needs the real stack (tests/integration/test_console.py)
lives under tests/integration and marks itself `browser` as well. A test under tests/k8s needs
the Kubernetes dev cluster (`make k8s-test`, left out of `make test` for now)."""

from __future__ import annotations

from pathlib import Path

import pytest

_MARKED_DIRS = {
    "integration": pytest.mark.integration,
    "compose": pytest.mark.compose,
    "browser": pytest.mark.browser,
    "k8s": pytest.mark.k8s,
}
_TESTS = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        top = item.path.relative_to(_TESTS).parts[0]
        if top in _MARKED_DIRS:
            item.add_marker(_MARKED_DIRS[top])
