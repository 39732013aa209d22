"""A simulated payment provider that keeps a ledger: one entry per paid order, ever."""

from __future__ import annotations

import logging
from typing import Any

from app.services.state_store import EtagMismatch, StateStore

log = logging.getLogger(__name__)


class PaymentLedger:
    def __init__(self, store: StateStore) -> None:
        self._store = store

    @staticmethod
    def key(order_id: str) -> str:
        return f"payment:{order_id}"

    async def charge(self, order_id: str, amount: int) -> None:
        """Record the payment; charging an order twice (an activity re-run) keeps the first entry."""
        try:
            await self._store.save(
                self.key(order_id), {"order_id": order_id, "amount": amount, "status": "paid"}, None
            )
        except EtagMismatch:
            log.info("order %s: payment already recorded", order_id)
            return
        log.info("order %s: payment of %d processed", order_id, amount)

    async def refund(self, order_id: str) -> None:
        while True:
            entry = await self._store.get(self.key(order_id))
            if entry is None or entry.value.get("status") == "refunded":
                return
            value: dict[str, Any] = {**entry.value, "status": "refunded"}
            try:
                await self._store.save(self.key(order_id), value, entry.etag)
            except EtagMismatch:
                continue
            log.info("order %s: payment refunded", order_id)
            return

    async def entry(self, order_id: str) -> dict[str, Any] | None:
        found = await self._store.get(self.key(order_id))
        return None if found is None else found.value
