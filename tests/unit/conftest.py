"""Fixtures every unit test may use. No Dapr here: the fakes stand in for the engine and store."""

from __future__ import annotations

import pytest

from tests.fixtures.fakes import InMemoryStateStore


@pytest.fixture
def store() -> InMemoryStateStore:
    return InMemoryStateStore()
