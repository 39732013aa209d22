"""The newcomer tier's figures (seconds from a fresh copy to a ready stack), printed at the end."""

from __future__ import annotations

import pytest

from tests.fixtures.newcomer import MEASUREMENTS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if MEASUREMENTS:
        terminalreporter.section("newcomer measurements")
        for line in MEASUREMENTS:
            terminalreporter.write_line(line)
