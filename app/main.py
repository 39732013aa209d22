"""Composition root: settings, clients, workflow runtime and routes are wired here and nowhere else."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

import httpx
from dapr.ext.workflow.aio import DaprWorkflowClient
from fastapi import FastAPI, Request
from fastapi_offline import FastAPIOffline

from app import observability
from app.api import audit, console, events, health, inventory, orders
from app.api.dependencies import Services, State, services_of
from app.api.errors import install_error_handlers
from app.api.limits import BodySizeLimit, RequestDeadline
from app.api.openapi import document_errors
from app.api.orders import MAX_WAIT_SECONDS
from app.config import Settings, get_settings
from app.customer_tokens import customer_tokens
from app.live.hub import OrderEventHub
from app.manager_token import manager_token
from app.services.audit import Auditor, audit_rules
from app.services.engine import DaprWorkflowGateway
from app.services.in_flight import InFlightOrders
from app.services.inventory import InventoryService
from app.services.manager_outbox import deliver_queued_actions
from app.services.order_observer import NO_OBSERVER, OrderObserver
from app.services.order_records import OrderRecords
from app.services.order_starts import retry_due_starts
from app.services.orders import OrderService
from app.services.payments import PaymentLedger
from app.services.sidecar import SidecarProbe
from app.services.state_store import SidecarStateStore
from app.workflows.activities import OrderActivities
from app.workflows.contracts import OrderEventPublisher
from app.workflows.failpoints import Failpoints
from app.workflows.runtime import SDK_LOGGING, build_runtime
from app.workflows.worker import WorkerSupervisor, keep_worker_connected

log = logging.getLogger("app")

MAX_BODY_BYTES = 16 * 1024
# (settings, manager token, what the services report order changes to) -> the services.
ServicesFactory = Callable[[Settings, str, OrderObserver], AbstractAsyncContextManager[Services]]


def order_activities(
    store: SidecarStateStore,
    observer: OrderObserver = NO_OBSERVER,
    in_flight: InFlightOrders | None = None,
    events: OrderEventPublisher | None = None,
) -> OrderActivities:
    """The workflow's activities over `store` (the benchmark's engine-only runs use them too),
    telling `events` of the steps they start and the outcomes they record."""
    return OrderActivities(
        InventoryService(store),
        PaymentLedger(store),
        OrderRecords(store, observer, in_flight),
        events,
    )


def workflow_worker(
    store: SidecarStateStore,
    settings: Settings,
    observer: OrderObserver = NO_OBSERVER,
    events: OrderEventPublisher | None = None,
) -> WorkerSupervisor:
    """The workflow worker of this process, its activities over `store`."""
    in_flight = InFlightOrders(store) if settings.observability else None
    activities = order_activities(store, observer, in_flight, events)
    failpoints = Failpoints(settings.failpoints_file)
    if failpoints.enabled:
        log.warning("failpoints armed from %s (fault injection)", settings.failpoints_file)
    return WorkerSupervisor(
        lambda: build_runtime(
            activities,
            settings.dapr_host,
            settings.dapr_grpc_port,
            settings.activity_timeout_seconds,
            failpoints,
        )
    )


def sidecar_store(settings: Settings) -> SidecarStateStore:
    return SidecarStateStore(
        settings.dapr_http_url, settings.statestore_name, api_token=settings.dapr_token
    )


@asynccontextmanager
async def dapr_services(
    settings: Settings, manager_token: str, observer: OrderObserver
) -> AsyncIterator[Services]:
    """The real wiring: state store and workflows through the local Dapr sidecar."""
    store = sidecar_store(settings)
    try:
        async with httpx.AsyncClient() as http:
            probe = SidecarProbe(
                http,
                settings.dapr_http_url,
                expect_worker=settings.workflow_worker,
                api_token=settings.dapr_token,
                store=store,
            )
            async with _running(settings, store, probe, observer) as (orders_service, hub, auditor):
                yield Services(
                    orders=orders_service,
                    inventory=InventoryService(store),
                    probe=probe,
                    manager_token=manager_token,
                    events=hub,
                    auditor=auditor,
                )
    finally:
        # Also when start-up fails (sidecar never healthy, a 401): no session left unclosed.
        await store.aclose()


@asynccontextmanager
async def _running(
    settings: Settings, store: SidecarStateStore, probe: SidecarProbe, observer: OrderObserver
) -> AsyncIterator[tuple[OrderService, OrderEventHub, Auditor]]:
    """The worker and the background loops, for as long as the app serves."""
    await probe.wait_healthy(settings.sidecar_wait_seconds)
    await InventoryService(store).seed()
    # Live order events: one poller per watched order, reading through the order service. The
    # service and this process's activities publish to it (an order whose activities run on
    # another replica's worker is read at the poll interval).
    hub = OrderEventHub(
        lambda order_id: orders_service.get(order_id),
        settings.order_events_poll_seconds,
        # Managers' streams see orders every replica accepts, from the shared order index.
        new_orders=lambda: orders_service.new_orders(),
    )
    supervisor = (
        workflow_worker(store, settings, observer, events=hub) if settings.workflow_worker else None
    )
    if supervisor is not None:
        # start() blocks until the worker's stream is open; keep the event loop free.
        await asyncio.to_thread(supervisor.start)
    client = DaprWorkflowClient(
        host=settings.dapr_host, port=str(settings.dapr_grpc_port), logger_options=SDK_LOGGING
    )
    workflows = DaprWorkflowGateway(client)
    orders_service = OrderService(store, workflows, settings, observer=observer, events=hub)
    background = [
        asyncio.create_task(
            deliver_queued_actions(orders_service.outbox, settings.outbox_interval_seconds)
        ),
        asyncio.create_task(
            retry_due_starts(orders_service.starts, settings.outbox_interval_seconds)
        ),
    ]
    if supervisor is not None:
        background.append(
            asyncio.create_task(
                keep_worker_connected(
                    supervisor,
                    probe.worker_missing,
                    settings.worker_check_seconds,
                    settings.worker_grace_seconds,
                    restart_sidecar=probe.request_shutdown,
                    report=observer,
                )
            )
        )
    try:
        yield orders_service, hub, Auditor(store, workflows, audit_rules(settings))
    finally:
        await hub.aclose()  # open event streams end here (uvicorn's own exit ends them first)
        for task in background:
            task.cancel()
        if supervisor is not None:
            await asyncio.to_thread(supervisor.shutdown)


@dataclass(frozen=True)
class ServiceReadings:
    """What the metrics' state gauges read (observability.metrics.StateReadings), from the
    services: observability is given it, and never imports the API's services itself."""

    services: Services

    @classmethod
    def of(cls, request: Request) -> ServiceReadings:
        return cls(services_of(request))

    async def manager_actions_queued(self) -> int:
        return await self.services.orders.outbox.waiting()

    async def orders_waiting_to_start(self) -> int:
        return await self.services.orders.starts.outbox.waiting()

    async def worker_connected(self) -> bool:
        return await self.services.probe.worker_connected()

    async def in_flight_by_step(self) -> dict[str, int] | None:
        return await self.services.orders.in_flight_by_step()


def create_app(
    settings: Settings | None = None, services: ServicesFactory = dapr_services
) -> FastAPI:
    settings = settings or get_settings()
    observability.configure_logging(settings.log_level, settings.log_format)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[State]:
        # `observer` is bound below by observability.install, before the app can start.
        tokens = customer_tokens(settings)  # a bad CUSTOMER_* setting stops start-up here
        async with services(settings, manager_token(settings), observer) as built:
            yield State(services=built, customer_tokens=tokens)
            # Shutdown: the server takes no more requests. Changes that outlived theirs (a
            # create or decision answered 503 at its deadline) finish, up to a deadline,
            # while the clients they write through are still open.
            await built.orders.changes.drain(settings.shutdown_drain_seconds)

    # FastAPIOffline is FastAPI whose /docs loads Swagger UI from the app itself
    # (/static-offline-docs) rather than a public CDN: the docs render with no internet. No
    # validator badge: Swagger UI would fetch it from its public validator. No /redoc: ReDoc's
    # bundle fetches its "API docs by Redocly" logo from Redocly's CDN.
    app = FastAPIOffline(
        title="Order processor",
        version="0.1.0",
        description="Orders processed by a durable Dapr workflow: reserve, approve above "
        f"{settings.approval_threshold}, pay, commit, with compensation on every failure path.",
        lifespan=lifespan,
        redoc_url=None,
        swagger_ui_parameters={"validatorUrl": None},
    )
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=MAX_BODY_BYTES)
    app.add_middleware(
        RequestDeadline, seconds=settings.request_timeout_seconds, max_wait=MAX_WAIT_SECONDS
    )
    app.include_router(health.router)
    app.include_router(orders.router)
    app.include_router(inventory.router)
    app.include_router(events.router)
    app.include_router(audit.router)
    app.include_router(console.router)
    observer = observability.install(app, settings, ServiceReadings.of)
    document_errors(app, customer_auth=settings.customer_auth == "jwt")
    return app
