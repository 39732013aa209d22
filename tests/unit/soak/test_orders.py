"""The soak's plan of orders: repeatable from its seed, every fate present, and each fate's
shape on the right side of the approval threshold."""

from __future__ import annotations

import random
from collections import Counter

from app.config import Settings
from app.domain.inventory import CATALOG
from soak.orders import CANCEL_WITHIN_SECONDS, DECISIONS, FATES, plan_orders


def test_the_same_seed_plans_the_same_orders() -> None:
    first = plan_orders(500, random.Random(7), "soak-7")
    again = plan_orders(500, random.Random(7), "soak-7")
    other = plan_orders(500, random.Random(8), "soak-8")
    assert first == again
    assert [o.fate for o in first] != [o.fate for o in other]


def test_order_ids_are_the_clients_own_and_distinct() -> None:
    orders = plan_orders(3000, random.Random(1), "soak-1")
    assert len({o.order_id for o in orders}) == 3000
    assert all(o.order_id.startswith("soak-1-") for o in orders)


def test_every_fate_appears_near_its_share() -> None:
    counts = Counter(o.fate for o in plan_orders(3000, random.Random(2), "soak-2"))
    for fate, share in FATES.items():
        assert abs(counts[fate] / 3000 - share) < 0.03, (fate, counts)


def test_only_the_fates_a_manager_decides_need_approval() -> None:
    threshold = Settings().approval_threshold
    for order in plan_orders(1000, random.Random(3), "soak-3"):
        total = CATALOG[order.shape.item].per_item_cost * order.shape.quantity
        assert (total > threshold) == (order.fate in DECISIONS), order


def test_cancels_at_a_random_moment_come_within_a_second() -> None:
    cancels = [
        o.cancel_after
        for o in plan_orders(1000, random.Random(4), "soak-4")
        if o.fate == "cancel_any_moment"
    ]
    assert cancels
    assert all(0 <= seconds <= CANCEL_WITHIN_SECONDS for seconds in cancels)
