"""InventoryService against the in-memory state store: holds, sales, restocks and the invariant."""

from __future__ import annotations

import pytest

from app.domain.inventory import CATALOG, StockLevel
from app.errors import Conflict, NotFound
from app.services.inventory import InventoryService
from tests.fixtures.fakes import InMemoryStateStore

ITEM = "computers"
INITIAL = CATALOG[ITEM].initial_stock


@pytest.fixture
async def inventory(store: InMemoryStateStore) -> InventoryService:
    service = InventoryService(store)
    await service.seed()
    return service


def balanced(level: StockLevel) -> bool:
    return (
        level.quantity + level.reserved + level.sold == level.stock
        and min(level.quantity, level.reserved, level.sold) >= 0
        and sum(level.held.values()) == level.reserved
    )


async def test_seed_creates_every_catalog_item_at_its_initial_stock(
    inventory: InventoryService,
) -> None:
    levels = {level.item: level for level in await inventory.levels()}

    assert set(levels) == set(CATALOG)
    for name, entry in CATALOG.items():
        assert levels[name].quantity == levels[name].stock == entry.initial_stock
        assert levels[name].per_item_cost == entry.per_item_cost


async def test_seed_never_overwrites_existing_stock(
    inventory: InventoryService, store: InMemoryStateStore
) -> None:
    await inventory.reserve("order-1", ITEM, 7)

    await InventoryService(store).seed()

    level = await inventory.level(ITEM)
    assert (level.quantity, level.reserved) == (INITIAL - 7, 7)


async def test_reserve_moves_units_from_available_to_reserved(inventory: InventoryService) -> None:
    assert await inventory.reserve("order-1", ITEM, 5) is True

    level = await inventory.level(ITEM)
    assert (level.quantity, level.reserved, level.sold) == (INITIAL - 5, 5, 0)
    assert level.held == {"order-1": 5}


async def test_reserve_twice_for_the_same_order_holds_once(inventory: InventoryService) -> None:
    await inventory.reserve("order-1", ITEM, 5)

    assert await inventory.reserve("order-1", ITEM, 5) is True

    level = await inventory.level(ITEM)
    assert (level.quantity, level.reserved) == (INITIAL - 5, 5)


async def test_insufficient_stock_reserves_nothing(inventory: InventoryService) -> None:
    assert await inventory.reserve("order-1", ITEM, INITIAL + 1) is False

    level = await inventory.level(ITEM)
    assert (level.quantity, level.reserved) == (INITIAL, 0)
    assert level.held == {}


async def test_reserve_of_exactly_what_is_available_succeeds(inventory: InventoryService) -> None:
    assert await inventory.reserve("order-1", ITEM, INITIAL) is True

    assert (await inventory.level(ITEM)).quantity == 0


async def test_release_gives_held_units_back(inventory: InventoryService) -> None:
    await inventory.reserve("order-1", ITEM, 5)

    await inventory.release("order-1", ITEM)

    level = await inventory.level(ITEM)
    assert (level.quantity, level.reserved, level.held) == (INITIAL, 0, {})


async def test_release_twice_releases_once(inventory: InventoryService) -> None:
    await inventory.reserve("order-1", ITEM, 5)
    await inventory.reserve("order-2", ITEM, 3)

    await inventory.release("order-1", ITEM)
    await inventory.release("order-1", ITEM)

    level = await inventory.level(ITEM)
    assert (level.quantity, level.reserved) == (INITIAL - 3, 3)


async def test_release_without_a_reservation_changes_nothing(inventory: InventoryService) -> None:
    before = await inventory.level(ITEM)

    await inventory.release("never-reserved", ITEM)

    assert await inventory.level(ITEM) == before


async def test_commit_turns_held_units_into_sold_ones(inventory: InventoryService) -> None:
    await inventory.reserve("order-1", ITEM, 5)

    await inventory.commit("order-1", ITEM)

    level = await inventory.level(ITEM)
    assert (level.quantity, level.reserved, level.sold) == (INITIAL - 5, 0, 5)
    assert level.held == {}


async def test_commit_twice_sells_once(inventory: InventoryService) -> None:
    await inventory.reserve("order-1", ITEM, 5)

    await inventory.commit("order-1", ITEM)
    await inventory.commit("order-1", ITEM)

    assert (await inventory.level(ITEM)).sold == 5


async def test_release_after_commit_gives_nothing_back(inventory: InventoryService) -> None:
    await inventory.reserve("order-1", ITEM, 5)
    await inventory.commit("order-1", ITEM)

    await inventory.release("order-1", ITEM)

    level = await inventory.level(ITEM)
    assert (level.quantity, level.sold) == (INITIAL - 5, 5)


async def test_restock_adds_to_available_and_to_stock(inventory: InventoryService) -> None:
    level = await inventory.restock(ITEM, 25)

    assert (level.quantity, level.stock) == (INITIAL + 25, INITIAL + 25)
    assert await inventory.level(ITEM) == level


async def test_reset_restores_catalog_stock_and_clears_sales(inventory: InventoryService) -> None:
    await inventory.reserve("order-1", ITEM, 5)
    await inventory.commit("order-1", ITEM)
    await inventory.restock(ITEM, 10)

    await inventory.reset()

    level = await inventory.level(ITEM)
    assert (level.quantity, level.reserved, level.sold, level.stock) == (INITIAL, 0, 0, INITIAL)


async def test_reset_keeps_the_reservation_of_an_order_in_flight(
    inventory: InventoryService,
) -> None:
    await inventory.reserve("in-flight", ITEM, 30)

    await inventory.reset()

    level = await inventory.level(ITEM)
    assert level.held == {"in-flight": 30}
    assert (level.quantity, level.reserved, level.sold) == (INITIAL - 30, 30, 0)


async def test_commit_after_reset_keeps_the_invariant(inventory: InventoryService) -> None:
    await inventory.reserve("in-flight", ITEM, 30)
    await inventory.reset()

    await inventory.commit("in-flight", ITEM)

    level = await inventory.level(ITEM)
    assert balanced(level)
    assert (level.reserved, level.sold) == (0, 30)


async def test_release_after_reset_keeps_the_invariant(inventory: InventoryService) -> None:
    await inventory.reserve("in-flight", ITEM, 30)
    await inventory.reset()

    await inventory.release("in-flight", ITEM)

    level = await inventory.level(ITEM)
    assert balanced(level)
    assert (level.quantity, level.reserved) == (INITIAL, 0)


async def test_reset_when_reservations_exceed_catalog_stock_never_goes_negative(
    inventory: InventoryService,
) -> None:
    await inventory.restock(ITEM, 50)
    await inventory.reserve("big", ITEM, INITIAL + 20)

    await inventory.reset()

    level = await inventory.level(ITEM)
    assert balanced(level)
    assert (level.quantity, level.reserved) == (0, INITIAL + 20)


async def test_invariant_holds_after_every_operation(inventory: InventoryService) -> None:
    operations = [
        inventory.reserve("a", ITEM, 10),
        inventory.reserve("b", ITEM, 20),
        inventory.reserve("too-many", ITEM, 1_000),
        inventory.commit("a", ITEM),
        inventory.restock(ITEM, 7),
        inventory.reserve("c", ITEM, 5),
        inventory.reset(),
        inventory.release("b", ITEM),
        inventory.commit("c", ITEM),
        inventory.commit("c", ITEM),
        inventory.release("a", ITEM),
    ]
    for operation in operations:
        await operation
        level = await inventory.level(ITEM)
        assert balanced(level), level


async def test_etag_conflict_is_retried_until_the_write_lands(
    inventory: InventoryService, store: InMemoryStateStore
) -> None:
    store.conflict_next_saves = 3

    assert await inventory.reserve("order-1", ITEM, 5) is True

    assert store.conflict_next_saves == 0
    assert (await inventory.level(ITEM)).reserved == 5


async def test_racing_writer_between_read_and_write_is_not_overwritten(
    inventory: InventoryService, store: InMemoryStateStore
) -> None:
    # Another replica reserves between our read and our write: its hold must survive ours.
    store.before_next_save = lambda: InventoryService(store).reserve("other", ITEM, 4)

    await inventory.reserve("order-1", ITEM, 5)

    level = await inventory.level(ITEM)
    assert level.held == {"other": 4, "order-1": 5}
    assert balanced(level)


async def test_level_of_an_unknown_item_is_not_found(inventory: InventoryService) -> None:
    with pytest.raises(NotFound, match="known items: cars, computers, paperclip"):
        await inventory.level("unicorns")


async def test_restock_of_an_unknown_item_is_not_found(inventory: InventoryService) -> None:
    with pytest.raises(NotFound):
        await inventory.restock("unicorns", 5)


async def test_item_names_are_case_insensitive(inventory: InventoryService) -> None:
    await inventory.restock("  Computers ", 5)

    level = await inventory.level("COMPUTERS")
    assert level.item == ITEM
    assert level.quantity == INITIAL + 5


async def test_endless_contention_gives_up_with_conflict(
    inventory: InventoryService, store: InMemoryStateStore
) -> None:
    store.conflict_next_saves = 1_000

    with pytest.raises(Conflict, match="too contended"):
        await inventory.reserve("order-1", ITEM, 5)

    store.conflict_next_saves = 0
    assert (await inventory.level(ITEM)).reserved == 0


async def test_sold_total_counts_every_commit_and_survives_resets(
    inventory: InventoryService,
) -> None:
    await inventory.reserve("order-1", ITEM, 5)
    await inventory.commit("order-1", ITEM)
    await inventory.reset()
    await inventory.reserve("order-2", ITEM, 3)
    await inventory.commit("order-2", ITEM)
    await inventory.commit("order-2", ITEM)

    level = await inventory.level(ITEM)
    assert (level.sold, level.sold_total) == (3, 8)


async def test_a_document_from_before_sold_total_keeps_it_unknown(
    inventory: InventoryService, store: InMemoryStateStore
) -> None:
    doc, _ = store.data[f"inventory:{ITEM}"]
    del doc["sold_total"]
    await inventory.reserve("order-1", ITEM, 5)
    await inventory.commit("order-1", ITEM)

    level = await inventory.level(ITEM)
    assert (level.sold, level.sold_total) == (5, None)
    assert "sold_total" not in store.data[f"inventory:{ITEM}"][0]
