"""Composition root: settings, clients, workflow runtime and routes are wired here and nowhere else."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
from dapr.ext.workflow.aio import DaprWorkflowClient
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.api import health, inventory, orders
from app.config import Settings, get_settings
from app.dependencies import Services
from app.errors import DependencyUnavailable, install_error_handlers
from app.limits import BodySizeLimit
from app.schemas import ErrorOut
from app.services.inventory import InventoryService
from app.services.orders import OrderService
from app.services.payments import PaymentLedger
from app.services.sidecar import SidecarProbe
from app.services.state_store import SidecarStateStore
from app.services.workflows import DaprWorkflowGateway
from app.workflows.activities import OrderActivities
from app.workflows.runtime import WorkerSupervisor, build_runtime

log = logging.getLogger("app")

MAX_BODY_BYTES = 16 * 1024
ServicesFactory = Callable[[Settings, str], AbstractAsyncContextManager[Services]]


async def _wait_for_sidecar(client: httpx.AsyncClient, settings: Settings) -> None:
    deadline = time.monotonic() + settings.sidecar_wait_seconds
    url = f"{settings.dapr_http_url}/v1.0/healthz"
    while True:
        try:
            if (await client.get(url, timeout=2.0)).status_code == 204:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"Dapr sidecar not healthy at {url} after {settings.sidecar_wait_seconds:.0f}s"
            )
        await asyncio.sleep(0.5)


async def _deliver_queued_actions(orders: OrderService, interval: float) -> None:
    """Approvals and cancels the engine could not take at once, delivered once it is back."""
    while True:
        # DependencyUnavailable: the sidecar is still away; the next round tries again.
        with contextlib.suppress(DependencyUnavailable):
            await orders.deliver_pending()
        await asyncio.sleep(interval)


async def _keep_worker_connected(
    supervisor: WorkerSupervisor, probe: SidecarProbe, settings: Settings
) -> None:
    """Replace the workflow worker when the sidecar has not counted it for a while (the
    SDK's own reconnect covers a lost stream, not a stream daprd no longer routes to)."""
    missing_since: float | None = None
    while True:
        await asyncio.sleep(settings.worker_check_seconds)
        if not (await probe.readiness()).worker_missing:
            missing_since = None
            continue
        missing_since = missing_since or time.monotonic()
        if time.monotonic() - missing_since >= settings.worker_grace_seconds:
            await asyncio.to_thread(supervisor.restart)
            missing_since = None


@asynccontextmanager
async def dapr_services(settings: Settings, manager_token: str) -> AsyncIterator[Services]:
    """The real wiring: state store and workflows through the local Dapr sidecar."""
    store = SidecarStateStore(settings.dapr_http_url, settings.statestore_name)
    async with httpx.AsyncClient() as http:
        await _wait_for_sidecar(http, settings)
        inventory_service = InventoryService(store)
        await inventory_service.seed()
        supervisor = None
        if settings.workflow_worker:
            activities = OrderActivities(inventory_service, PaymentLedger(store))
            supervisor = WorkerSupervisor(
                lambda: build_runtime(activities, settings.dapr_host, settings.dapr_grpc_port)
            )
            # start() blocks until the worker's stream is open; keep the event loop free.
            await asyncio.to_thread(supervisor.start)
        client = DaprWorkflowClient(host=settings.dapr_host, port=str(settings.dapr_grpc_port))
        orders_service = OrderService(store, DaprWorkflowGateway(client), settings)
        probe = SidecarProbe(http, settings.dapr_http_url, expect_worker=supervisor is not None)
        background = [
            asyncio.create_task(
                _deliver_queued_actions(orders_service, settings.outbox_interval_seconds)
            )
        ]
        if supervisor is not None:
            background.append(
                asyncio.create_task(_keep_worker_connected(supervisor, probe, settings))
            )
        try:
            yield Services(
                orders=orders_service,
                inventory=inventory_service,
                probe=probe,
                manager_token=manager_token,
            )
        finally:
            for task in background:
                task.cancel()
            if supervisor is not None:
                await asyncio.to_thread(supervisor.shutdown)
            await store.aclose()


def _manager_token(settings: Settings) -> str:
    if settings.manager_token is not None and settings.manager_token.get_secret_value():
        return settings.manager_token.get_secret_value()
    token = secrets.token_urlsafe(24)
    log.warning("MANAGER_TOKEN is not set; manager token for this process: %s", token)
    return token


def _configure_logging(level: str) -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # One line per sidecar call drowns the order lines that matter.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # The SDK's worker logs through a handler of its own; propagating would print each line twice.
    logging.getLogger("durabletask-worker").propagate = False


def create_app(
    settings: Settings | None = None, services: ServicesFactory = dapr_services
) -> FastAPI:
    settings = settings or get_settings()
    _configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with services(settings, _manager_token(settings)) as built:
            app.state.services = built
            yield

    app = FastAPI(
        title="Order processor",
        version="0.1.0",
        description="Orders processed by a durable Dapr workflow: reserve, approve above "
        f"{settings.approval_threshold}, pay, commit, with compensation on every failure path.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=MAX_BODY_BYTES)
    app.include_router(health.router)
    app.include_router(orders.router)
    app.include_router(inventory.router)
    _document_errors(app)
    return app


def _document_errors(app: FastAPI) -> None:
    """Make /openapi.json say what the error handler really sends: every 4xx/5xx body,
    validation errors included, is an ErrorOut, not FastAPI's default HTTPValidationError."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            error_ref = {"$ref": "#/components/schemas/ErrorOut"}
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas["ErrorOut"] = ErrorOut.model_json_schema()
            for operation in (op for path in schema["paths"].values() for op in path.values()):
                responses = operation.setdefault("responses", {})
                if "422" in responses:
                    responses["422"] = {
                        "description": "Invalid input",
                        "content": {"application/json": {"schema": error_ref}},
                    }
                if "requestBody" in operation:
                    responses["413"] = {
                        "description": "Body over 16 KiB",
                        "content": {"application/json": {"schema": error_ref}},
                    }
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
