"""Tracing: the home of the OpenTelemetry setup (FastAPI instrumentation, spans around workflow
scheduling and activities, W3C trace context passed to daprd).

Not built yet; `install_tracing` is where it will be switched on from Settings.
"""

from __future__ import annotations

from fastapi import FastAPI

from app.config import Settings


def install_tracing(app: FastAPI, settings: Settings) -> None:
    """Instrument `app` and configure the exporter (nothing yet)."""
