"""The README's curl walkthrough, run against the real process stack exactly as written."""

from __future__ import annotations

from devstack.stack import Stack
from tests.fixtures.readme import walk_through_approval
from tests.fixtures.stack import MANAGER_TOKEN


async def test_readme_walkthrough_takes_an_order_through_approval(stack: Stack) -> None:
    await walk_through_approval(stack.app_url, MANAGER_TOKEN)
