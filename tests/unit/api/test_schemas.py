"""The public response models against the domain types they show."""

from __future__ import annotations

from typing import get_args

from app.api.schemas import TimelineEntryOut
from app.workflows.contracts import OrderEventKind


def test_a_timeline_entry_shows_every_kind_of_order_event_and_no_other() -> None:
    shown = get_args(TimelineEntryOut.model_fields["event"].annotation)

    assert set(shown) == {kind.value for kind in OrderEventKind}
