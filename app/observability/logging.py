"""Log setup for the process: the app's, the SDK worker's and the HTTP client's lines."""

from __future__ import annotations

import logging


def configure_logging(level: str) -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # One line per sidecar call drowns the order lines that matter.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # The SDK's worker logs through a handler of its own; propagating would print each line twice.
    worker = logging.getLogger("durabletask-worker")
    worker.propagate = False
    # It logs a line per workflow turn at INFO, and it builds summaries of every turn's events
    # whenever its own logger's level is unset (it tests `logger.level`, not the effective
    # level), only to drop them: about a tenth of the worker's CPU. Warnings still show.
    worker.setLevel(logging.DEBUG if level.upper() == "DEBUG" else logging.WARNING)
