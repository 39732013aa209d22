"""Tracing: OpenTelemetry spans exported over OTLP, switched on by `OTEL_EXPORTER_OTLP_ENDPOINT`.

With no endpoint nothing is installed: no exporter, no instrumentation, and the spans the services
and activities open (`opentelemetry.trace.get_tracer(...)`) go to the API's default no-op tracer,
which costs a function call. With one:

- FastAPI requests are server spans (health probes and scrapes left out: they would drown orders);
- the workflow client's gRPC calls to daprd (scheduling, events, reads) are client spans and carry
  W3C `traceparent` in their metadata, so daprd's own spans join the request's trace;
- the state store's HTTP calls to daprd (aiohttp) likewise;
- the Dapr SDK's worker continues the workflow's trace in each activity (daprd hands it the
  trace context), and each activity opens a span of its own with the order id
  (app.workflows.runtime);
- root spans are only requests and activities: a client call with no parent is background
  polling, left out (RequestsAndWork).
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient, GrpcInstrumentorClient
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, TraceState
from opentelemetry.util.types import Attributes

from app.config import Settings

# Liveness, readiness and scrapes: many a minute, none of them about an order.
UNTRACED_URLS = "/healthz,/readyz,/metrics"

_provider: TracerProvider | None = None


class RequestsAndWork(Sampler):
    """Traces begin at a request the app serves or an activity it runs; a client call with no
    parent is background polling (the outbox loop, the worker check, a scrape's reads) and is
    not traced, nor, through the unsampled `traceparent` it carries, are daprd's spans for it."""

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        if kind == SpanKind.CLIENT:
            return SamplingResult(Decision.DROP)
        return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)

    def get_description(self) -> str:
        return "RequestsAndWork"


def tracer_provider(settings: Settings) -> TracerProvider:
    """The process's provider, made once: OpenTelemetry's global provider can be set only once,
    and two apps in one process (the tests) share it."""
    global _provider
    if _provider is None:
        _provider = TracerProvider(
            resource=Resource.create({SERVICE_NAME: settings.otel_service_name}),
            sampler=ParentBased(root=RequestsAndWork()),
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
        # The Dapr SDK instruments gRPC's client channels on import whenever the gRPC
        # instrumentation is installed (its _durabletask client modules): undone here, before
        # the worker and the client open their channels, so that with tracing off no call
        # pays for an interceptor.
        sdk_grpc = GrpcInstrumentorClient()  # type: ignore[no-untyped-call]
        if sdk_grpc.is_instrumented_by_opentelemetry:
            sdk_grpc.uninstrument()
        return
    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=tracer_provider(settings), excluded_urls=UNTRACED_URLS
    )
