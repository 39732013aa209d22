"""What the order services report as it happens: an order accepted, decided, finished.

The services call an `OrderObserver` at the moment a change is committed; the composition root
(app.main) passes in the implementation (the Prometheus counters of app.observability), so the
services never import it. Counts that describe state (queued actions, worker connected) are not
reported here: they are read from the store or the sidecar when asked.
"""

from __future__ import annotations

from typing import Protocol


class OrderObserver(Protocol):
    def order_accepted(self) -> None:
        """A new order's workflow was scheduled."""

    def order_decided(self, decision: str) -> None:
        """A manager's decision (approved, rejected, cancelled) was recorded."""

    def order_finished(self, outcome: str) -> None:
        """An order's outcome (`processed` or the failure reason) was recorded, once per order."""

    def approval_waited(self, seconds: float) -> None:
        """A finished order had waited this long for a manager (decision, timeout or cancel)."""

    # The worker watchdog's remedies (app.workflows.worker.keep_worker_connected).
    def worker_replaced(self) -> None:
        """This process replaced its workflow worker: the sidecar had stopped counting it."""

    def sidecar_restart_requested(self) -> None:
        """This process asked daprd to shut down (replacing the worker had not helped)."""


class NoObserver:
    """Nobody is watching: every report is dropped."""

    def order_accepted(self) -> None:
        return None

    def order_decided(self, decision: str) -> None:
        return None

    def order_finished(self, outcome: str) -> None:
        return None

    def approval_waited(self, seconds: float) -> None:
        return None

    def worker_replaced(self) -> None:
        return None

    def sidecar_restart_requested(self) -> None:
        return None


NO_OBSERVER = NoObserver()
