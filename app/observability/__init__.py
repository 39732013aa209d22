"""Logging, metrics and tracing setup: one place, called by app.main only.

Metrics and tracing are not built yet; their modules say what they will expose so that, when
they land, nothing of them lands in main.py or in the services.
"""

from __future__ import annotations

from fastapi import FastAPI

from app.config import Settings
from app.observability.logging import configure_logging
from app.observability.metrics import install_metrics
from app.observability.tracing import install_tracing


def install(app: FastAPI, settings: Settings) -> None:
    """Everything an operator observes, attached to the app in one call."""
    install_metrics(app, settings)
    install_tracing(app, settings)


__all__ = ["configure_logging", "install"]
