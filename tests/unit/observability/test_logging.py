"""LOG_FORMAT=json: one JSON object per line, with the order and the trace where known."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from dapr.ext.workflow._durabletask.internal.shared import get_logger
from opentelemetry.sdk.trace import TracerProvider

from app.observability.logging import configure_logging
from app.workflows.runtime import SDK_LOGGING


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    """The root logger writing to a buffer only (pytest's own capture set aside meanwhile)."""
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    stream = io.StringIO()
    root.handlers = [logging.StreamHandler(stream)]
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.handlers, root.level = saved, level


def lines(output: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.getvalue().splitlines()]


def test_a_json_line_has_level_logger_message_and_the_order(output: io.StringIO) -> None:
    configure_logging("INFO", "json")

    logging.getLogger("app.services.payments").info("order %s: payment of %d processed", "o1", 5)

    (line,) = lines(output)
    assert line["level"] == "INFO"
    assert line["logger"] == "app.services.payments"
    assert line["message"] == "order o1: payment of 5 processed"
    assert line["order_id"] == "o1"
    assert "time" in line
    assert "trace_id" not in line  # no span: nothing made up


def test_an_order_id_passed_as_extra_is_kept(output: io.StringIO) -> None:
    configure_logging("INFO", "json")

    logging.getLogger("app").warning("redelivery failed", extra={"order_id": "o7"})

    assert lines(output)[0]["order_id"] == "o7"


def test_a_line_logged_inside_a_span_carries_its_trace_id(output: io.StringIO) -> None:
    configure_logging("INFO", "json")
    tracer = TracerProvider().get_tracer("test")

    with tracer.start_as_current_span("work") as span:
        logging.getLogger("app").info("inside")
        expected = f"{span.get_span_context().trace_id:032x}"

    assert lines(output)[0]["trace_id"] == expected


def test_the_sdk_workers_lines_go_through_the_same_formatter_once(output: io.StringIO) -> None:
    configure_logging("INFO", "json")
    # As the SDK's worker makes its logger, with the handler the app's runtime hands it.
    worker_log = get_logger("worker", SDK_LOGGING.log_handler, SDK_LOGGING.log_formatter)

    # At INFO it logs a line per workflow turn, so it is kept at WARNING (configure_logging).
    worker_log.info("a workflow turn")
    worker_log.warning("connection lost, reconnecting")

    assert [(line["level"], line["logger"], line["message"]) for line in lines(output)] == [
        ("WARNING", "durabletask-worker", "connection lost, reconnecting")
    ]


def test_the_human_format_stays_the_default(output: io.StringIO) -> None:
    configure_logging("INFO")

    logging.getLogger("app").info("order %s: accepted", "o1")

    text = output.getvalue()
    assert " INFO app: order o1: accepted" in text
    assert not text.startswith("{")


def test_uvicorns_lines_become_json_and_a_silenced_access_log_stays_silent(
    output: io.StringIO,
) -> None:
    loggers = [logging.getLogger(name) for name in ("uvicorn", "uvicorn.error", "uvicorn.access")]
    saved = [(lg.handlers[:], lg.propagate, lg.level, lg.disabled) for lg in loggers]
    server, error, access = loggers
    # As uvicorn leaves them with --no-access-log: its own handler on one, the other silenced.
    # (Other tests in the session may have run uvicorn at another level: set every field.)
    server.handlers, server.propagate = [logging.StreamHandler(io.StringIO())], False
    error.handlers, error.propagate = [], True
    access.handlers, access.propagate = [], False
    for logger in loggers:
        logger.setLevel(logging.INFO)
        logger.disabled = False
    try:
        configure_logging("INFO", "json")
        error.info("Application startup complete.")
        access.info('"GET /healthz HTTP/1.1" 200')
    finally:
        for logger, (handlers, propagate, level, disabled) in zip(loggers, saved, strict=True):
            logger.handlers, logger.propagate, logger.disabled = handlers, propagate, disabled
            logger.setLevel(level)

    assert [(line["logger"], line["message"]) for line in lines(output)] == [
        ("uvicorn.error", "Application startup complete.")
    ]
