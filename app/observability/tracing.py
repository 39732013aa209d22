"""Tracing: OpenTelemetry spans exported over OTLP, switched on by `OTEL_EXPORTER_OTLP_ENDPOINT`.

With no endpoint nothing is installed: no exporter, no instrumentation, and the spans the services
and activities open (`opentelemetry.trace.get_tracer(...)`) go to the API's default no-op tracer,
which costs a function call. With one:

- FastAPI requests are server spans (health probes and scrapes left out: they would drown orders);
- the workflow client's gRPC calls to daprd (scheduling, events, reads) are client spans and carry
  W3C `traceparent` in their metadata, so daprd's own spans join the request's trace;
- the state store's HTTP calls to daprd (aiohttp) likewise;
- the worker's long-lived stream to daprd is left alone (one span per stream would never end);
  each activity opens a span of its own with the order id (app.workflows.runtime).
"""

from __future__ import annotations

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from app.config import Settings

# Liveness, readiness and scrapes: many a minute, none of them about an order.
UNTRACED_URLS = "/healthz,/readyz,/metrics"

_provider: TracerProvider | None = None


def tracer_provider(settings: Settings) -> TracerProvider:
    """The process's provider, made once: OpenTelemetry's global provider can be set only once,
    and two apps in one process (the tests) share it."""
    global _provider
    if _provider is None:
        _provider = TracerProvider(
            resource=Resource.create({SERVICE_NAME: settings.otel_service_name})
        )
        exporter = OTLPSpanExporter(endpoint=settings.otel_exporter_otlp_endpoint, insecure=True)
        _provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(_provider)
        # Clients are instrumented process-wide (they patch channel and session constructors).
        GrpcAioInstrumentorClient().instrument(tracer_provider=_provider)  # type: ignore[no-untyped-call]
        AioHttpClientInstrumentor().instrument(tracer_provider=_provider)
    return _provider


def install_tracing(app: FastAPI, settings: Settings) -> None:
    """Instrument `app` and export its spans, when an OTLP endpoint is configured."""
    if not settings.otel_exporter_otlp_endpoint:
        return
    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=tracer_provider(settings), excluded_urls=UNTRACED_URLS
    )
