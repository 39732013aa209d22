"""A simulated payment provider that keeps a ledger: one entry per paid order, ever."""

from __future__ import annotations

import logging
from typing import Any

from app.errors import StoredStateConflict
from app.services.state_store import StateStore, compare_and_swap, create_or_read

log = logging.getLogger(__name__)


class PaymentLedger:
    def __init__(self, store: StateStore) -> None:
        self._store = store

    @staticmethod
    def key(order_id: str) -> str:
        return f"payment:{order_id}"

    async def charge(self, order_id: str, amount: int) -> None:
        """Record the payment. Charging an order again (an activity re-run) finds its entry and
        keeps it; a write that failed raises, so an order never goes on as paid without one."""
        recorded, created = await create_or_read(
            self._store,
            self.key(order_id),
            {"order_id": order_id, "amount": amount, "status": "paid"},
        )
        if created:
            log.info("order %s: payment of %d processed", order_id, amount)
            return
        if recorded.get("order_id") != order_id or recorded.get("amount") != amount:
            raise StoredStateConflict(
                f"order {order_id}: the ledger holds {recorded}, not a payment of {amount}"
            )
        log.info("order %s: payment already recorded", order_id)

    async def refund(self, order_id: str) -> None:
        """Mark the order's payment refunded; a no-op when there is none or it already is."""

        def refunded(entry: dict[str, Any] | None) -> dict[str, Any] | None:
            if entry is None or entry.get("status") == "refunded":
                return None
            return {**entry, "status": "refunded"}

        stored = await compare_and_swap(self._store, self.key(order_id), refunded)
        if stored is not None:
            log.info("order %s: payment refunded", order_id)

    async def entry(self, order_id: str) -> dict[str, Any] | None:
        found = await self._store.get(self.key(order_id))
        return None if found is None else found.value
