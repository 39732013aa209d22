"""The order workflow's activities. Each may run more than once, so each is idempotent:
reservations are keyed by order id, the payment ledger keeps one entry per order."""

from __future__ import annotations

import logging

from app.services.inventory import InventoryService
from app.services.payments import PaymentLedger
from app.workflows.contracts import ActivityRequest

log = logging.getLogger(__name__)


class OrderActivities:
    def __init__(self, inventory: InventoryService, payments: PaymentLedger) -> None:
        self._inventory = inventory
        self._payments = payments

    async def notify(self, request: ActivityRequest) -> None:
        log.info("order %s: %s", request.order_id, request.message)

    async def reserve_inventory(self, request: ActivityRequest) -> bool:
        return await self._inventory.reserve(request.order_id, request.item, request.quantity)

    async def request_approval(self, request: ActivityRequest) -> None:
        log.info(
            "order %s: total %d needs a manager's approval (POST /orders/%s/approve)",
            request.order_id,
            request.amount,
            request.order_id,
        )

    async def process_payment(self, request: ActivityRequest) -> None:
        await self._payments.charge(request.order_id, request.amount)

    async def commit_inventory(self, request: ActivityRequest) -> None:
        await self._inventory.commit(request.order_id, request.item)

    async def release_inventory(self, request: ActivityRequest) -> None:
        await self._inventory.release(request.order_id, request.item)

    async def refund_payment(self, request: ActivityRequest) -> None:
        await self._payments.refund(request.order_id)
