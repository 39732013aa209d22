"""Tracing is a no-op unless an OTLP endpoint is configured."""

from __future__ import annotations

import grpc
from opentelemetry import trace

from app.config import Settings
from app.main import create_app
from app.observability.tracing import RequestsAndWork


def test_without_an_endpoint_no_provider_and_no_grpc_interceptors_are_installed() -> None:
    import dapr.ext.workflow  # noqa: F401  # the SDK instruments gRPC on import

    create_app(Settings(manager_token="t"))

    # The API's placeholder: spans from get_tracer() are non-recording, nothing is exported.
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    # Uninstrumented: the channel constructor is gRPC's own again.
    assert grpc.insecure_channel.__module__ == "grpc"


def test_background_client_calls_do_not_start_traces() -> None:
    sampler = RequestsAndWork()

    client = sampler.should_sample(None, 1, "GET", trace.SpanKind.CLIENT)
    request = sampler.should_sample(None, 1, "POST /orders", trace.SpanKind.SERVER)
    activity = sampler.should_sample(None, 1, "activity notify", trace.SpanKind.INTERNAL)

    assert not client.decision.is_sampled()  # type: ignore[no-untyped-call]
    assert request.decision.is_sampled()  # type: ignore[no-untyped-call]
    assert activity.decision.is_sampled()  # type: ignore[no-untyped-call]
