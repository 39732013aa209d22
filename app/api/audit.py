"""GET /audit: the auditor's report on the live store, for managers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.dependencies import AuditorDep, ManagerDep
from app.api.errors import Forbidden, Unauthorized, error_responses
from app.api.orders import MAX_WAIT_SECONDS
from app.api.schemas import AuditOut
from app.errors import DependencyUnavailable

router = APIRouter(tags=["audit"])


@router.get(
    "/audit",
    response_model=AuditOut,
    dependencies=[ManagerDep],
    responses=error_responses(Unauthorized, Forbidden, DependencyUnavailable),
)
async def audit(
    auditor: AuditorDep,
    wait: Annotated[
        int,
        Query(
            ge=0,
            le=MAX_WAIT_SECONDS,
            description="Seconds the audit may take beyond the request deadline (a large store)",
        ),
    ] = 0,
) -> AuditOut:
    """Check every invariant on the live store: what was read, and each violation with its order."""
    # `wait` is read by the request deadline (app.api.limits), which it extends.
    return AuditOut.model_validate((await auditor.run()).as_json())
