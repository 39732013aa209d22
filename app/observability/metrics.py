"""Prometheus metrics: the home of `GET /metrics` and of the order counters.

Not built yet. When it is: exposition comes from a library (prometheus-client), HTTP metrics are
labelled by route template, and counts that describe state (orders in flight, queued manager
actions) are read from the store or the engine, not kept in process memory alone.
"""

from __future__ import annotations

from fastapi import FastAPI

from app.config import Settings


def install_metrics(app: FastAPI, settings: Settings) -> None:
    """Attach the metrics endpoint and middleware to `app` (nothing yet)."""
