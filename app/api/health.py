from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.api.dependencies import ProbeDep
from app.api.schemas import HealthOut

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthOut)
async def healthz() -> HealthOut:
    """The process is alive and serving HTTP."""
    return HealthOut(status="ok")


@router.get("/readyz", response_model=HealthOut, responses={503: {"model": HealthOut}})
async def readyz(probe: ProbeDep) -> JSONResponse:
    """The sidecar is healthy and this app's workflow worker is connected to it."""
    readiness = await probe.readiness()
    body = HealthOut(status="ready" if readiness.ready else "not_ready", detail=readiness.reason)
    return JSONResponse(body.model_dump(), status_code=200 if readiness.ready else 503)
