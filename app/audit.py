"""`python -m app.audit`: check every invariant on the live store and say what is wrong.

Reads the store and the engine through the Dapr sidecar that the service's own settings name
(DAPR_HTTP_PORT, DAPR_GRPC_PORT, DAPR_API_TOKEN, STATESTORE_NAME, ...), with the same auditor as
GET /audit (app.services.audit). Exit status: 0 when every invariant holds, 1 when one does not
(each violation is printed with its order id), 2 when the store or the engine could not be read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence

from dapr.ext.workflow.logger import LoggerOptions

from app.config import Settings
from app.domain.audit import AuditReport
from app.errors import DependencyUnavailable
from app.services.audit import Auditor, audit_rules
from app.services.state_store import SidecarStateStore

OK, VIOLATED, UNREADABLE = 0, 1, 2
# The SDK's client logs to standard output by default: keep that for the report.
_SDK_LOGGING = LoggerOptions(log_handler=logging.NullHandler())


async def run_audit(settings: Settings) -> AuditReport:
    # Imported here, after main() quietened it: the SDK instruments gRPC when each of its two
    # workflow clients' modules is imported, and the second logs "Attempting to instrument while
    # already instrumented" to standard error, which an operator would take for a fault.
    from dapr.ext.workflow.aio import DaprWorkflowClient

    from app.services.engine import DaprWorkflowGateway

    store = SidecarStateStore(
        settings.dapr_http_url, settings.statestore_name, api_token=settings.dapr_token
    )
    client = DaprWorkflowClient(
        host=settings.dapr_host, port=str(settings.dapr_grpc_port), logger_options=_SDK_LOGGING
    )
    try:
        return await Auditor(store, DaprWorkflowGateway(client), audit_rules(settings)).run()
    finally:
        await store.aclose()


def summary(report: AuditReport) -> list[str]:
    """The report for a terminal: one line of counts, then one line per violation."""
    counted = ", ".join(f"{name} {count}" for name, count in report.checked.items())
    verdict = "ok" if report.ok else f"{len(report.violations)} violation(s)"
    lines = [f"audit: {verdict} ({counted})"]
    lines += [
        f"VIOLATION {v.invariant}: order {v.order_id}: {v.detail}"
        if v.order_id is not None
        else f"VIOLATION {v.invariant}: {v.detail}"
        for v in report.violations
    ]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app.audit",
        description="Check every invariant of the order service on its live store.",
    )
    parser.add_argument("--json", action="store_true", help="print the report as GET /audit does")
    args = parser.parse_args(argv)
    logging.getLogger("opentelemetry.instrumentation.instrumentor").setLevel(logging.ERROR)
    try:
        report = asyncio.run(run_audit(Settings()))
    except DependencyUnavailable as error:
        print(f"audit: could not read the store: {error.detail}", file=sys.stderr)
        return UNREADABLE
    print(json.dumps(report.as_json(), indent=2) if args.json else "\n".join(summary(report)))
    return OK if report.ok else VIOLATED


if __name__ == "__main__":
    sys.exit(main())
