"""Logging, metrics and tracing setup: one place, called by app.main only."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from starlette.requests import Request

from app.config import Settings
from app.observability.logging import configure_logging
from app.observability.metrics import StateReadings, install_metrics
from app.observability.tracing import install_tracing
from app.services.order_observer import OrderObserver


def install(
    app: FastAPI, settings: Settings, readings: Callable[[Request], StateReadings]
) -> OrderObserver:
    """Everything an operator observes, attached to the app in one call. Returns what the
    services report order changes to (the metrics' counters). `readings`: what the state
    gauges read, for a request."""
    orders = install_metrics(app, settings, readings)
    install_tracing(app, settings)
    return orders


__all__ = ["configure_logging", "install"]
