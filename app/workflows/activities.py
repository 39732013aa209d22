"""The order workflow's activities. Each may run more than once, so each is idempotent:
reservations are keyed by order id, the payment ledger keeps one entry per order, the payment's
start is one mark on the order record.

The activities need stock and payments, not the services that provide them: the protocols
below say what they need, and the composition root (app.main) passes the services in. So the
workflow package never imports app.services, and the dependency points one way only.

Each activity that starts a step publishes a STEP event as it starts, and the one that records
the outcome publishes FINISHED once it is recorded (OrderEvent, to app.live's hub in the app):
the live streams read the order at once instead of at their next poll. A signal only, so
publishing never fails an activity.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Final, Protocol

from app.workflows.contracts import (
    ActionsRequest,
    ActivityName,
    ActivityRequest,
    Completion,
    DecisionsClosing,
    DiscardingPublisher,
    ManagerAction,
    OrderEvent,
    OrderEventKind,
    OrderEventPublisher,
    OrderOutcome,
    Reason,
    Step,
)

log = logging.getLogger(__name__)

# The step each activity is the work of (the workflow's `run(step, activity)` pairs): it
# publishes a STEP event for it as it starts. NOTIFY also sends the completion notice of orders
# started before FINISH_WITH_NOTICE (step notifying_completion): its event names the first
# step, and the reader finds the order's real one. Not here: RECORD_OUTCOME and FINISH_ORDER
# (step done; they publish FINISHED), CHECK_DECISION, READ_ACTIONS and CLOSE_DECISIONS (checks
# made within a step, not steps).
STEP_STARTED_BY: Final[Mapping[ActivityName, Step]] = MappingProxyType(
    {
        ActivityName.NOTIFY: Step.NOTIFYING,
        ActivityName.RESERVE_INVENTORY: Step.RESERVING,
        ActivityName.REQUEST_APPROVAL: Step.REQUESTING_APPROVAL,
        ActivityName.PROCESS_PAYMENT: Step.PROCESSING_PAYMENT,
        ActivityName.PAY_UNLESS_CANCELLED: Step.PROCESSING_PAYMENT,
        ActivityName.COMMIT_INVENTORY: Step.UPDATING_INVENTORY,
        ActivityName.RELEASE_INVENTORY: Step.RELEASING,
        ActivityName.REFUND_PAYMENT: Step.REFUNDING,
    }
)


def _now() -> datetime:
    return datetime.now(UTC)


class Stock(Protocol):
    async def hold(self, order_id: str, item: str, quantity: int) -> tuple[bool, bool]:
        """(held, whether this call made the hold)."""

    async def commit(self, order_id: str, item: str) -> None: ...

    async def release(self, order_id: str, item: str) -> None: ...


class Payments(Protocol):
    async def charge(self, order_id: str, amount: int) -> None: ...

    async def refund(self, order_id: str) -> None: ...


class OrderBook(Protocol):
    """The order records: the actions managers logged, and where the outcome goes."""

    async def actions_after(self, order_id: str, seq: int) -> list[ManagerAction]: ...

    async def recorded_decision(self, order_id: str) -> str | None: ...

    async def start_payment(self, order_id: str) -> bool: ...

    async def payment_started(self, order_id: str) -> bool: ...

    async def settle_stock(self, order_id: str) -> None: ...

    async def stock_settled(self, order_id: str) -> bool: ...

    async def close_decisions(self, order_id: str, reason: Reason) -> str | None: ...

    async def record_outcome(self, outcome: OrderOutcome) -> None: ...


class OrderActivities:
    """One method per ActivityName member, named as its value (runtime.py registers them so)."""

    def __init__(
        self,
        stock: Stock,
        payments: Payments,
        orders: OrderBook,
        events: OrderEventPublisher | None = None,
    ) -> None:
        self._stock = stock
        self._payments = payments
        self._orders = orders
        self._events = events or DiscardingPublisher()

    async def _publish(self, event: OrderEvent) -> None:
        """Publish `event`; a publisher that fails is logged, never the activity's failure: the
        event only makes a live stream read the order sooner than its next poll would."""
        try:
            await self._events.publish(event)
        except Exception:
            log.warning(
                "order %s: %s event not published", event.order_id, event.kind, exc_info=True
            )

    async def _starting(self, activity: ActivityName, request: ActivityRequest) -> None:
        step = STEP_STARTED_BY[activity]
        await self._publish(OrderEvent(request.order_id, OrderEventKind.STEP, _now(), step))

    async def _recorded(self, outcome: OrderOutcome) -> None:
        await self._publish(OrderEvent(outcome.order_id, OrderEventKind.FINISHED, _now()))

    async def notify(self, request: ActivityRequest) -> None:
        await self._starting(ActivityName.NOTIFY, request)
        log.info("order %s: %s", request.order_id, request.message)

    async def reserve_inventory(self, request: ActivityRequest) -> bool:
        """Hold the order's stock; True when it is held. A run after the order's payment
        started is a replay of an earlier turn (daprd killed mid-save leaves a partial history
        in Redis, which is no transactional actor store, and the workflow runs its steps
        again): its stock was reserved then and may be sold by now, with no hold left to show
        it, so reserving again would sell it twice. Measured: after kill -9 of a replica's
        daprd, 59 orders processed and paid and 60 units sold. So it answers True and holds
        nothing; the replayed commit then finds no hold and changes nothing."""
        await self._starting(ActivityName.RESERVE_INVENTORY, request)
        if await self._orders.payment_started(request.order_id):
            log.warning("order %s: reserve run again after its payment started", request.order_id)
            return True
        held, made = await self._stock.hold(request.order_id, request.item, request.quantity)
        # The check above and the hold are two writes apart: Dapr can run this activity again
        # while the workflow, with the first run's answer, pays and commits (measured: after
        # kill -9 of a replica's daprd, a second run's hold landed 0.2 s after the commit, and
        # stayed). A hold made now for an order whose stock is already committed or released
        # is such a late run's: given back. (A hold that was there is the order's own.)
        if made and await self._orders.stock_settled(request.order_id):
            log.warning(
                "order %s: reserve ran after the stock was settled; hold given back",
                request.order_id,
            )
            await self._stock.release(request.order_id, request.item)
        return held

    async def request_approval(self, request: ActivityRequest) -> None:
        await self._starting(ActivityName.REQUEST_APPROVAL, request)
        log.info(
            "order %s: total %d needs a manager's approval (POST /orders/%s/approve)",
            request.order_id,
            request.amount,
            request.order_id,
        )

    async def process_payment(self, request: ActivityRequest) -> None:
        await self._starting(ActivityName.PROCESS_PAYMENT, request)
        await self._payments.charge(request.order_id, request.amount)

    async def pay_unless_cancelled(self, request: ActivityRequest) -> bool:
        """Charge the order unless a cancel was recorded on it first; False when it was (nothing
        charged). Marking the payment started on the order record is what closes the door to
        cancels, so a run again after a crash finds it marked and charges (the ledger keeps one
        entry per order)."""
        await self._starting(ActivityName.PAY_UNLESS_CANCELLED, request)
        if not await self._orders.start_payment(request.order_id):
            log.info("order %s: cancelled before payment; nothing charged", request.order_id)
            return False
        await self._payments.charge(request.order_id, request.amount)
        return True

    async def commit_inventory(self, request: ActivityRequest) -> None:
        await self._starting(ActivityName.COMMIT_INVENTORY, request)
        # Marked first: a reserve landing after the commit then knows to give its hold back.
        await self._orders.settle_stock(request.order_id)
        await self._stock.commit(request.order_id, request.item)

    async def release_inventory(self, request: ActivityRequest) -> None:
        await self._starting(ActivityName.RELEASE_INVENTORY, request)
        await self._orders.settle_stock(request.order_id)
        await self._stock.release(request.order_id, request.item)

    async def refund_payment(self, request: ActivityRequest) -> None:
        await self._starting(ActivityName.REFUND_PAYMENT, request)
        await self._payments.refund(request.order_id)

    async def record_outcome(self, outcome: OrderOutcome) -> None:
        await self._orders.record_outcome(outcome)
        await self._recorded(outcome)

    async def finish_order(self, completion: Completion) -> None:
        # Recorded first: the notice tells the customer what the order's record already says.
        await self._orders.record_outcome(completion.outcome)
        await self._recorded(completion.outcome)
        if completion.notice is not None:
            log.info("order %s: %s", completion.outcome.order_id, completion.notice)

    async def read_actions(self, request: ActionsRequest) -> list[ManagerAction]:
        """The order's logged manager actions the workflow has not read (after `request.after`),
        oldest first."""
        actions = await self._orders.actions_after(request.order_id, request.after)
        if not actions:
            log.warning(
                "order %s: a manager event arrived with nothing new in the action log; ignored",
                request.order_id,
            )
        return actions

    async def check_decision(self, request: ActivityRequest) -> str | None:
        # Orders started before the MANAGER_ACTION_LOG patch ask for the decision alone.
        decision = await self._orders.recorded_decision(request.order_id)
        if decision is None:
            log.warning(
                "order %s: a manager event arrived with no decision recorded; ignored",
                request.order_id,
            )
        return decision

    async def close_decisions(self, closing: DecisionsClosing) -> str | None:
        """The workflow ends the order on its own (`closing.reason`): the decision a manager
        recorded before (it is the outcome), or None once the order is closed to decisions."""
        decision = await self._orders.close_decisions(closing.order_id, closing.reason)
        if decision is not None:
            log.info(
                "order %s: %s was recorded before %s; it stands",
                closing.order_id,
                decision,
                closing.reason,
            )
        return decision
