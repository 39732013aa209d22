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

from app.api.errors import Forbidden, Unauthorized
from app.customer_tokens import CustomerTokens, InvalidCustomerToken, KeysUnavailable
from app.domain.customers import EVERYONE, STATIC_MANAGER, Viewer, customer, manager
from app.errors import DependencyUnavailable
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
    # The customer-token verifier (CUSTOMER_AUTH=jwt); None with customer auth off.
    customer_tokens: CustomerTokens | None


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
ManagerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
# The order routes' own scheme: optional with CUSTOMER_AUTH=off (and not required by the docs,
# since the default is off); MANAGER_TOKEN is taken there as well.
CUSTOMER_SCHEME = "CustomerJWT"  # its name in /openapi.json (app.api.openapi reads it)
_customer_bearer = HTTPBearer(
    auto_error=False,
    scheme_name=CUSTOMER_SCHEME,
    bearerFormat="JWT",
    description="CUSTOMER_AUTH=jwt: a customer's JWT (`sub` is the customer), or a manager's "
    "(`role` claim = CUSTOMER_MANAGER_ROLE); MANAGER_TOKEN is accepted too. Unused with "
    "CUSTOMER_AUTH=off",
)
CustomerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_customer_bearer)]


def _customer_tokens(request: Request) -> CustomerTokens | None:
    tokens: CustomerTokens | None = getattr(request.state, "customer_tokens", None)
    return tokens


def _is_manager_token(request: Request, credentials: HTTPAuthorizationCredentials) -> bool:
    expected = services_of(request).manager_token
    return secrets.compare_digest(credentials.credentials.encode(), expected.encode())


async def _identified(
    request: Request, credentials: HTTPAuthorizationCredentials | None
) -> Viewer | None:
    """Who the bearer token says the caller is; None when there is no token, or customer auth
    is off and it is not the manager token (anonymous, as before customers existed)."""
    if credentials is None:
        return None
    if _is_manager_token(request, credentials):
        return STATIC_MANAGER
    tokens = _customer_tokens(request)
    if tokens is None:
        return None
    try:
        identity = await tokens.verify(credentials.credentials)
    except InvalidCustomerToken as error:
        raise Unauthorized(f"invalid token: {error.reason}") from None
    except KeysUnavailable as error:
        raise DependencyUnavailable(str(error)) from None
    return manager(identity.subject) if identity.manager else customer(identity.subject)


async def _viewer(request: Request, credentials: CustomerCredentials) -> Viewer:
    """Who is asking about orders. With customer auth off, anyone without the manager token
    sees what everyone sees; with it on, a token is required (401 before anything is read)."""
    viewer = await _identified(request, credentials)
    if viewer is not None:
        return viewer
    if _customer_tokens(request) is None:
        return EVERYONE
    raise Unauthorized("orders need 'Authorization: Bearer <token>': a customer's JWT")


async def _require_manager(request: Request, credentials: ManagerCredentials) -> Viewer:
    if credentials is None:
        raise Unauthorized("manager endpoints need 'Authorization: Bearer <MANAGER_TOKEN>'")
    viewer = await _identified(request, credentials)
    if viewer is None:
        raise Unauthorized("invalid manager token")
    if not viewer.manager:
        raise Forbidden("a manager's token is needed; this one is a customer's")
    return viewer


OrdersDep = Annotated[OrderService, Depends(_orders)]
InventoryDep = Annotated[InventoryService, Depends(_inventory)]
ProbeDep = Annotated[SidecarProbe, Depends(_probe)]
EventsDep = Annotated[OrderEventHub, Depends(_events)]
AuditorDep = Annotated[Auditor, Depends(_auditor)]
ManagerDep = Depends(_require_manager)
# The manager making the call (the static token's, or a manager JWT's with its `sub`).
ManagerViewerDep = Annotated[Viewer, Depends(_require_manager)]
# Who is asking, for the order routes (see _viewer).
ViewerDep = Annotated[Viewer, Depends(_viewer)]
