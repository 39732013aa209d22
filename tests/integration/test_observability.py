"""OBSERVABILITY=true on a private real stack: Prometheus scrapes the order series, and Jaeger
holds one trace per order with the app's and daprd's spans in it.

The stack is the one `OBSERVABILITY=true make run` starts: Debian's Prometheus and Jaeger built
from its Go module, both queried through their own HTTP APIs (tests/fixtures/observability.py;
tests/compose/test_observability.py checks the same on the compose stack).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from devstack.stack import Stack
from tests.fixtures.observability import (
    assert_order_series_scraped,
    processed_order,
    traces_of,
    whole_order,
)
from tests.fixtures.stack import MANAGER_TOKEN, api_client, module_stack

observed = module_stack("observed-stack", observability=True)


@pytest.fixture
async def api(observed: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(observed) as client:
        yield client


async def test_prometheus_scrapes_the_order_series_after_an_order_ran(
    observed: Stack, api: httpx.AsyncClient
) -> None:
    await processed_order(api, MANAGER_TOKEN)

    await assert_order_series_scraped(f"http://127.0.0.1:{observed.settings.prometheus_port}")


async def test_one_order_is_one_trace_across_the_app_and_daprd(
    observed: Stack, api: httpx.AsyncClient
) -> None:
    order_id = await processed_order(api, MANAGER_TOKEN)

    traces = await traces_of(f"http://127.0.0.1:{observed.settings.jaeger_ui_port}", order_id)

    assert sum(1 for trace in traces if whole_order(trace)) == 1
