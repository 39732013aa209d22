"""`python -m app.audit`: what it prints and its exit status, over a report made by hand."""

from __future__ import annotations

import json

import pytest

from app import audit as cli
from app.config import Settings
from app.domain.audit import AuditReport, Violation
from app.errors import DependencyUnavailable

CLEAN = AuditReport({"orders": 2, "holds": 0}, [])
BROKEN = AuditReport(
    {"orders": 2, "holds": 1},
    [
        Violation("payment", "order-7", "processed, but the ledger has no entry"),
        Violation("stock_balance", None, "cars: 3 units sold in all, but processed orders ..."),
    ],
)


def reporting(monkeypatch: pytest.MonkeyPatch, report: AuditReport | Exception) -> None:
    async def run_audit(settings: Settings) -> AuditReport:
        if isinstance(report, Exception):
            raise report
        return report

    monkeypatch.setattr(cli, "run_audit", run_audit)


def test_a_clean_store_prints_the_counts_and_exits_0(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    reporting(monkeypatch, CLEAN)

    assert cli.main([]) == 0
    assert capsys.readouterr().out == "audit: ok (orders 2, holds 0)\n"


def test_each_violation_is_printed_with_its_order_and_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    reporting(monkeypatch, BROKEN)

    assert cli.main([]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "audit: 2 violation(s) (orders 2, holds 1)",
        "VIOLATION payment: order order-7: processed, but the ledger has no entry",
        "VIOLATION stock_balance: cars: 3 units sold in all, but processed orders ...",
    ]


def test_json_prints_the_report_as_get_audit_does(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    reporting(monkeypatch, BROKEN)

    assert cli.main(["--json"]) == 1
    assert json.loads(capsys.readouterr().out) == BROKEN.as_json()


def test_a_store_that_cannot_be_read_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    reporting(monkeypatch, DependencyUnavailable("state store unreachable through the sidecar"))

    assert cli.main([]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "could not read the store: state store unreachable" in captured.err
