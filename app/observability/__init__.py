"""Logging, metrics and tracing setup: one place, called by app.main only.

Tracing is not built yet; its module says what it will expose so that, when it lands, nothing of
it lands in main.py or in the services.
"""

from __future__ import annotations

from fastapi import FastAPI

from app.config import Settings
from app.observability.logging import configure_logging
from app.observability.metrics import install_metrics
from app.observability.tracing import install_tracing
from app.services.order_observer import OrderObserver


def install(app: FastAPI, settings: Settings) -> OrderObserver:
    """Everything an operator observes, attached to the app in one call. Returns what the
    services report order changes to (the metrics' counters)."""
    orders = install_metrics(app, settings)
    install_tracing(app, settings)
    return orders


__all__ = ["configure_logging", "install"]
