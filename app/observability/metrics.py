"""Prometheus metrics: `GET /metrics`, the HTTP series, the order counters and the state gauges.

Exposition comes from prometheus-client, over a registry of this app instance's own (two apps in
one process, as in the tests, never share a series). HTTP series are labelled by route template
(`/orders/{order_id}`), never by raw path. The order counters are fed by the services through
their `OrderObserver` hook. Gauges that describe state (manager actions waiting in the outbox,
workflow worker connected) are read from the store and the sidecar on each scrape, not kept in
process memory: they stay right across restarts and replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from typing import Final, Protocol, get_args

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings
from app.errors import DependencyUnavailable
from app.workflows.contracts import DecisionKind, Reason, Step

# Requests that matched no route (scanners, typos) share one label: raw paths would grow the
# series without bound.
UNMATCHED_ROUTE: Final = "<unmatched>"


class OrderMetrics:
    """The counters, as the services' `OrderObserver` (see app.services.order_observer)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.accepted = Counter(
            "orders_accepted",
            "Orders accepted (recorded; see orders_waiting_to_start for those not started yet).",
            registry=registry,
        )
        self.decided = Counter(
            "orders_decisions",
            "Manager decisions recorded, by decision (approved, rejected, cancelled).",
            ["decision"],
            registry=registry,
        )
        self.finished = Counter(
            "orders_finished",
            "Orders finished, by outcome (processed, or the failure reason).",
            ["outcome"],
            registry=registry,
        )

        self.approval_wait = Histogram(
            "orders_approval_wait_seconds",
            "How long finished orders waited for a manager, from awaiting_approval to the "
            "decision, the timeout or a cancel (the workflow's own step times).",
            # The default approval timeout is 200 s: its bucket holds the timeouts.
            buckets=(1, 5, 15, 30, 60, 120, 200, 300, 600, 1800, 3600),
            registry=registry,
        )
        self.worker_replacements = Counter(
            "orders_workflow_worker_replacements",
            "Workflow workers this process replaced because the sidecar stopped counting it "
            "(the worker watchdog).",
            registry=registry,
        )
        self.sidecar_shutdowns = Counter(
            "orders_daprd_shutdown_requests",
            "Times this process asked daprd to shut down because replacing the worker did not "
            "help (the worker watchdog; daprd's supervisor starts it again).",
            registry=registry,
        )

        # Every known label at 0 from the start: the first order of a kind is an increase that
        # rate() sees, not a series appearing out of nowhere.
        for decision in get_args(DecisionKind):
            self.decided.labels(decision=decision)
        for outcome in ("processed", *get_args(Reason)):
            self.finished.labels(outcome=outcome)

    def order_accepted(self) -> None:
        self.accepted.inc()

    def order_decided(self, decision: str) -> None:
        self.decided.labels(decision=decision).inc()

    def order_finished(self, outcome: str) -> None:
        self.finished.labels(outcome=outcome).inc()

    def approval_waited(self, seconds: float) -> None:
        self.approval_wait.observe(seconds)

    def worker_replaced(self) -> None:
        self.worker_replacements.inc()

    def sidecar_restart_requested(self) -> None:
        self.sidecar_shutdowns.inc()


class StateReadings(Protocol):
    """What the state gauges read, each from the store or the engine (the composition root
    adapts the services to it, so observability sits below the API, not above it)."""

    async def manager_actions_queued(self) -> int: ...

    async def orders_waiting_to_start(self) -> int: ...

    async def worker_connected(self) -> bool: ...

    async def in_flight_by_step(self) -> dict[str, int] | None:
        """None when the counts are not kept."""


class StateGauges(Collector):
    """Gauges read at scrape time: `refresh` reads them (async), `collect` reports what it read."""

    def __init__(self, read_seconds: float) -> None:
        self._read_seconds = read_seconds
        self.queued_actions: int | None = None
        self.waiting_to_start: int | None = None
        self.worker_connected: bool | None = None
        self.in_flight: dict[str, int] | None = None

    async def refresh(self, readings: StateReadings) -> None:
        async def queued() -> int | None:
            with contextlib.suppress(TimeoutError, DependencyUnavailable):
                async with asyncio.timeout(self._read_seconds):
                    return await readings.manager_actions_queued()
            return None

        async def to_start() -> int | None:
            with contextlib.suppress(TimeoutError, DependencyUnavailable):
                async with asyncio.timeout(self._read_seconds):
                    return await readings.orders_waiting_to_start()
            return None

        async def connected() -> bool:
            # A sidecar that does not answer in time cannot hand work to this worker either.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._read_seconds):
                    return await readings.worker_connected()
            return False

        async def in_flight() -> dict[str, int] | None:
            with contextlib.suppress(TimeoutError, DependencyUnavailable):
                # One engine read per unfinished order, 16 at a time: ~2 ms each on loopback,
                # so thousands fit; past that the gauge is left out rather than late.
                async with asyncio.timeout(self._read_seconds):
                    return await readings.in_flight_by_step()
            return None

        (
            self.queued_actions,
            self.waiting_to_start,
            self.worker_connected,
            self.in_flight,
        ) = await asyncio.gather(queued(), to_start(), connected(), in_flight())

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        return self._families()

    def _families(self) -> list[Metric]:
        queued = GaugeMetricFamily(
            "orders_manager_actions_queued",
            "Orders whose manager action waits for delivery to the workflow (the outbox, read "
            "from the state store); absent when the store did not answer.",
        )
        if self.queued_actions is not None:
            queued.add_metric([], self.queued_actions)
        to_start = GaugeMetricFamily(
            "orders_waiting_to_start",
            "Orders accepted whose workflow is not yet known to have started (the start outbox, "
            "read from the state store); absent when the store did not answer.",
        )
        if self.waiting_to_start is not None:
            to_start.add_metric([], self.waiting_to_start)
        worker = GaugeMetricFamily(
            "orders_workflow_worker_connected",
            "1 when the Dapr sidecar counts a workflow worker connected (its metadata), else 0.",
        )
        if self.worker_connected is not None:
            worker.add_metric([], 1 if self.worker_connected else 0)
        in_flight = GaugeMetricFamily(
            "orders_in_flight",
            "Orders accepted and not finished, by the workflow step they are at (read from the "
            "state store and the engine at scrape time); absent when they did not answer, or "
            "the app keeps no in-flight sets (OBSERVABILITY off).",
            labels=["step"],
        )
        if self.in_flight is not None:
            for step in (*Step, "pending"):
                if step != Step.DONE:
                    in_flight.add_metric([str(step)], self.in_flight.get(str(step), 0))
        return [queued, to_start, worker, in_flight]


class HttpSeries:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template.",
            ["method", "route"],
            registry=registry,
        )


class HttpMetrics:
    """ASGI middleware: requests by method, route template and status, and their latency."""

    def __init__(self, app: ASGIApp, series: HttpSeries) -> None:
        self.app = app
        self.series = series

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # an exception that escapes before a response started is answered 500
        started = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            # The router writes the matched route into the scope it was given (this one).
            route = getattr(scope.get("route"), "path", UNMATCHED_ROUTE)
            self.series.requests.labels(scope["method"], route, str(status)).inc()
            self.series.latency.labels(scope["method"], route).observe(
                time.perf_counter() - started
            )


def install_metrics(
    app: FastAPI, settings: Settings, readings: Callable[[Request], StateReadings]
) -> OrderMetrics:
    """Attach `GET /metrics` and the HTTP middleware to `app`; returns the order counters for
    the composition root to hand to the services. `readings` gives what the state gauges read
    for a request (from the services the app's lifespan made)."""
    registry = CollectorRegistry()
    orders = OrderMetrics(registry)
    # A scrape answers well inside the request deadline even when the store or the sidecar does
    # not (as a manager action's engine wait does); an unanswered gauge is left out, not made up.
    state = StateGauges(read_seconds=settings.request_timeout_seconds / 4)
    registry.register(state)
    # One scrape at a time: the gauges it reads are reported by the same scrape.
    scraping = asyncio.Lock()

    async def metrics(request: Request) -> Response:
        """Prometheus text format: the HTTP series, the order counters, the state gauges."""
        # The format the scraper asks for (Prometheus offers OpenMetrics; curl gets text 0.0.4),
        # chosen as prometheus-client's own exposition server chooses it.
        encode, content_type = choose_encoder(request.headers.get("accept", ""))
        async with scraping:
            await state.refresh(readings(request))
            body = encode(registry)
        return Response(body, headers={"content-type": content_type})

    app.add_route("/metrics", metrics, methods=["GET"], include_in_schema=False)
    # Added last, so outermost: it sees the status the client got (413, deadline 503 included).
    app.add_middleware(HttpMetrics, series=HttpSeries(registry))
    return orders
