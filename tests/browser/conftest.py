"""The app over the fakes served on a loopback port, and a fresh headless Chromium, for every
test in this folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import Settings
from app.main import create_app
from tests.fixtures.api import MANAGER_TOKEN, THRESHOLD
from tests.fixtures.browser import Browser, chromium, serve
from tests.fixtures.fakes import FakeSidecar, FakeWorkflowGateway, InMemoryStateStore, fake_services


@pytest.fixture
def app_url() -> Iterator[str]:
    """The real app over the fakes, served by uvicorn on a free loopback port."""
    settings = Settings(
        manager_token=MANAGER_TOKEN, approval_threshold=THRESHOLD, log_level="WARNING"
    )
    app = create_app(
        settings,
        services=fake_services(InMemoryStateStore(), FakeWorkflowGateway(), FakeSidecar()),
    )
    with serve(app) as url:
        yield url


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    with chromium(tmp_path / "profile") as running:
        yield running
