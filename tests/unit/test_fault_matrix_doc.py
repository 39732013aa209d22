"""The published fault matrix (docs/fault-matrix.md) has the rows and columns the integration
test runs (tests/fixtures/fault_matrix.py): a new activity or fault shows up as a stale doc."""

from __future__ import annotations

from app.workflows.contracts import ActivityName
from tests.fixtures.fault_matrix import DOC, ROWS, UNREACHABLE, header, published_table, row_labels


def test_every_activity_is_a_row_of_the_matrix() -> None:
    assert list(ROWS) == list(ActivityName)
    assert {activity for activity, routes in ROWS.items() if not routes} == set(UNREACHABLE)


def test_the_published_matrix_has_the_tests_rows_and_columns() -> None:
    published_header, published_rows = published_table(DOC.read_text())
    assert published_header == header(), "regenerate: make fault-matrix"
    assert published_rows == row_labels(), "regenerate: make fault-matrix"
