"""Log setup for the process: the app's, the SDK worker's, uvicorn's and the HTTP client's lines.

Two formats (`LOG_FORMAT`): `human` (the default for `make run`) and `json`, one object per line
(containers, log shippers) with `time`, `level`, `logger`, `message`, and `order_id`, `trace_id`,
`span_id` where known. The SDK's loggers (durabletask-*, WorkflowRuntime) are given a silent
handler of their own (app.workflows.runtime.SDK_LOGGING) and propagate here, so their lines come
out in the same format and once.
"""

from __future__ import annotations

import logging
import re
from typing import Final, Literal

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

LogFormat = Literal["human", "json"]
HUMAN_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The app's lines say which order they are about as their first word: "order %s: ...".
_ORDER_PREFIX = re.compile(r"^order %s\b")
# Loggers that come with handlers of their own: in JSON mode their lines must go through ours.
_OWN_HANDLERS = ("uvicorn", "uvicorn.access")


class OrderContext(logging.Filter):
    """Adds `order_id` (from `extra={"order_id": ...}` or an "order %s: ..." line) and the
    current span's `trace_id`/`span_id` to a record, when known; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "order_id", None) is None:
            args = record.args
            if (
                isinstance(record.msg, str)
                and isinstance(args, tuple)
                and args
                and _ORDER_PREFIX.match(record.msg)
            ):
                record.order_id = str(args[0])
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = trace.format_trace_id(context.trace_id)
            record.span_id = trace.format_span_id(context.span_id)
        return True


def json_formatter() -> logging.Formatter:
    """One JSON object per line; record attributes set by `extra` or OrderContext are included."""
    return JsonFormatter(
        ["asctime", "levelname", "name", "message"],
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        # Python's own record attributes (taskName, color_message of uvicorn...) are noise.
        reserved_attrs=[*_RESERVED, "color_message", "taskName"],
    )


_RESERVED = [
    "args", "created", "exc_info", "exc_text", "filename", "funcName", "levelno", "lineno",
    "module", "msecs", "msg", "pathname", "process", "processName", "relativeCreated",
    "stack_info", "thread", "threadName",
]  # fmt: skip


def configure_logging(level: str, log_format: LogFormat = "human") -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=level, format=HUMAN_FORMAT)
    for handler in root.handlers:
        if not any(isinstance(f, OrderContext) for f in handler.filters):
            handler.addFilter(OrderContext())
        if log_format == "json":
            handler.setFormatter(json_formatter())
        elif handler.formatter is None:
            handler.setFormatter(logging.Formatter(HUMAN_FORMAT))
    if log_format == "json":
        for name in _OWN_HANDLERS:
            logger = logging.getLogger(name)
            # A logger uvicorn silenced (`--no-access-log`: no handler, no propagation) stays so.
            if logger.handlers:
                logger.handlers.clear()
                logger.propagate = True
    # One line per sidecar call drowns the order lines that matter.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # The SDK's worker logs a line per workflow turn at INFO, and it builds summaries of every
    # turn's events whenever its own logger's level is unset (it tests `logger.level`, not the
    # effective level), only to drop them: about a tenth of the worker's CPU. Warnings still show.
    worker = logging.getLogger("durabletask-worker")
    worker.setLevel(logging.DEBUG if level.upper() == "DEBUG" else logging.WARNING)
