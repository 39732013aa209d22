"""Request dependencies as Annotated aliases, so route signatures read like prose.

The services are built once by the lifespan (app.main) and handed to every request as typed
lifespan state: `State` below is the one place that says what the routes can reach.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated, TypedDict

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.api.errors import Unauthorized
from app.live.hub import OrderEventHub
from app.services.audit import Auditor
from app.services.inventory import InventoryService
from app.services.orders import OrderService
from app.services.sidecar import SidecarProbe


@dataclass(frozen=True)
class Services:
    """Everything the routes use."""

    orders: OrderService
    inventory: InventoryService
    probe: SidecarProbe
    manager_token: str
    events: OrderEventHub
    auditor: Auditor


class State(TypedDict):
    """What the lifespan yields; Starlette copies it into every request's `request.state`."""

    services: Services


def services_of(request: Request) -> Services:
    """The services the lifespan made, for a request (a route's dependency, or the metrics')."""
    services = request.state.services
    assert isinstance(services, Services), "the lifespan did not provide the services"
    return services


def _orders(request: Request) -> OrderService:
    return services_of(request).orders


def _inventory(request: Request) -> InventoryService:
    return services_of(request).inventory


def _probe(request: Request) -> SidecarProbe:
    return services_of(request).probe


def _events(request: Request) -> OrderEventHub:
    return services_of(request).events


def _auditor(request: Request) -> Auditor:
    return services_of(request).auditor


_bearer = HTTPBearer(auto_error=False, description="MANAGER_TOKEN (logged at start-up when unset)")


def _require_manager(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    if credentials is None:
        raise Unauthorized("manager endpoints need 'Authorization: Bearer <MANAGER_TOKEN>'")
    expected = services_of(request).manager_token
    if not secrets.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise Unauthorized("invalid manager token")


OrdersDep = Annotated[OrderService, Depends(_orders)]
InventoryDep = Annotated[InventoryService, Depends(_inventory)]
ProbeDep = Annotated[SidecarProbe, Depends(_probe)]
EventsDep = Annotated[OrderEventHub, Depends(_events)]
AuditorDep = Annotated[Auditor, Depends(_auditor)]
ManagerDep = Depends(_require_manager)
