"""docker-compose.observability.yml on top of docker-compose.yml: Prometheus scrapes the order
series by service name, and Jaeger holds one trace per order with the app's and daprd's spans.

The same checks as tests/integration/test_observability.py (tests/fixtures/observability.py),
on a project of its own, through the loopback ports the project publishes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.compose.project import OBSERVABILITY_FILE, ComposeProject, ProjectFactory
from tests.compose.support import MANAGER_TOKEN, record, wait_ready
from tests.fixtures.observability import (
    assert_order_series_scraped,
    processed_order,
    traces_of,
    whole_order,
)


@pytest.fixture(scope="module")
def observed(project_factory: ProjectFactory) -> ComposeProject:
    running = project_factory("opobserve", (OBSERVABILITY_FILE,))
    running.up()
    seconds = wait_ready(running, seconds=120.0)
    record(f"observability project: /readyz 200 {seconds:.1f}s after up -d")
    return running


@pytest.fixture
async def api(observed: ComposeProject) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=observed.app_url, timeout=30.0) as client:
        yield client


async def test_prometheus_scrapes_the_order_series_by_service_name(
    observed: ComposeProject, api: httpx.AsyncClient
) -> None:
    await processed_order(api, MANAGER_TOKEN)

    await assert_order_series_scraped(observed.prometheus_url)


async def test_one_order_is_one_trace_across_the_app_and_daprd(
    observed: ComposeProject, api: httpx.AsyncClient
) -> None:
    order_id = await processed_order(api, MANAGER_TOKEN)

    traces = await traces_of(observed.jaeger_url, order_id)

    assert sum(1 for trace in traces if whole_order(trace)) == 1
